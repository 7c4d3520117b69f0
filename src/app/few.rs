//! `Few`: a list that usually holds one item, kept in place until a second one comes.
//!
//! A connection's summary lists the Hosts its requests named, the `Server`s that answered and
//! the status codes seen: on nearly every connection one of each. As `Vec`s they cost three
//! allocations per connection (and three frees on the thread that drops the summary); a `Few`
//! allocates only for a second item. It reads as a slice, and prints and serializes as one.

use serde::Serialize;
use std::fmt;
use std::ops::{Deref, DerefMut};

#[derive(Clone, Default)]
pub enum Few<T> {
    #[default]
    Zero,
    One(T),
    Many(Vec<T>),
}

impl<T> Few<T> {
    pub fn push(&mut self, x: T) {
        *self = match std::mem::take(self) {
            Few::Zero => Few::One(x),
            Few::One(a) => Few::Many(vec![a, x]),
            Few::Many(mut v) => {
                v.push(x);
                Few::Many(v)
            }
        };
    }

    pub fn as_slice(&self) -> &[T] {
        match self {
            Few::Zero => &[],
            Few::One(x) => std::slice::from_ref(x),
            Few::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Few::Zero => &mut [],
            Few::One(x) => std::slice::from_mut(x),
            Few::Many(v) => v,
        }
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for Few<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq> PartialEq for Few<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: fmt::Debug> fmt::Debug for Few<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl<T: Serialize> Serialize for Few<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prints_and_serializes_as_the_slice_it_holds() {
        let mut f: Few<u32> = Few::default();
        let mut v: Vec<u32> = Vec::new();
        for x in [7, 3, 9, 1] {
            assert_eq!(f.as_slice(), v.as_slice());
            assert_eq!(format!("{f:?}"), format!("{v:?}"));
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
            f.push(x);
            v.push(x);
        }
        assert!(matches!(f, Few::Many(_)));
        assert_eq!(f, [7, 3, 9, 1]);
        f[1] = 4;
        assert_eq!(f.iter().copied().max(), Some(9));
        assert_eq!((&f).into_iter().nth(1), Some(&4));
        let mut one = Few::default();
        one.push("a");
        assert!(matches!(one, Few::One(_)));
        assert_eq!(one, ["a"]);
    }
}
