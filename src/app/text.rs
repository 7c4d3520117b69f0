//! `ShortText`: an immutable string kept inline when it is short, for the HTTP fields every
//! connection stores (method, target, Host, `Server`, reason, …).
//!
//! On a busy capture each connection carries one short exchange; a `String` per field was a
//! `malloc` and a `free` per field per connection, most of the allocations of the whole run.
//! Nearly all of these values fit in `INLINE` bytes, so they live in the struct itself; a longer
//! one goes to the heap once (`Box<str>`, no spare capacity). To everything else it is a `str`:
//! it derefs, compares, orders and hashes as one, and prints and serializes exactly as a
//! `String` would (reports stay byte-for-byte the same).

use serde::{Serialize, Serializer};
use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Bytes kept inline: with the length byte and the variant tag a `ShortText` is 32 bytes (an
/// `Option<ShortText>` too), and `GET`, `/index.html`, `nginx/1.24.0`, `OK` or a Host name fit.
const INLINE: usize = 30;

/// An immutable UTF-8 string, inline up to `INLINE` bytes, on the heap beyond.
#[derive(Clone)]
pub struct ShortText(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is a whole UTF-8 string: only the constructors below write it, and they
    /// copy complete `&str`s (never part of one).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl ShortText {
    /// A copy of `s` (inline when it fits).
    pub fn new(s: &str) -> ShortText {
        ShortText::concat(&[s])
    }

    /// `parts` joined, with no intermediate `String`: inline when the whole fits, else one
    /// exact-size heap allocation.
    pub fn concat(parts: &[&str]) -> ShortText {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            let mut at = 0;
            for p in parts {
                bytes[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
            ShortText(Repr::Inline {
                len: len as u8,
                bytes,
            })
        } else {
            let mut s = String::with_capacity(len);
            for p in parts {
                s.push_str(p);
            }
            ShortText(Repr::Heap(s.into_boxed_str()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // `bytes[..len]` was copied from whole `&str`s, one after another (`concat` is
                // the only place that writes it, and the field is private to this module), so it
                // is valid UTF-8 and this cannot fail. It is checked anyway, on every read: the
                // crate keeps `unsafe` to its FFI edge, and checking ≤ 30 bytes (ASCII nearly
                // always) costs a few nanoseconds, far less than the allocation this type saves.
                std::str::from_utf8(&bytes[..*len as usize])
                    .expect("ShortText holds whole UTF-8 strings")
            }
            Repr::Heap(s) => s,
        }
    }

    /// The text's bytes, without the UTF-8 check of `as_str`: equality and order use them (a
    /// `str`'s equality and order are its bytes'), so comparing two texts — the topology's
    /// request matching compares millions — costs no validation.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// Whether the text is stored inline (for the boundary tests).
    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for ShortText {
    fn default() -> ShortText {
        ShortText::new("")
    }
}

impl Deref for ShortText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShortText {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ShortText {
    fn from(s: &str) -> ShortText {
        ShortText::new(s)
    }
}

impl From<String> for ShortText {
    /// A short `String` is copied inline and freed; a long one keeps its buffer (trimmed to its
    /// length).
    fn from(s: String) -> ShortText {
        if s.len() <= INLINE {
            ShortText::new(&s)
        } else {
            ShortText(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<Cow<'_, str>> for ShortText {
    fn from(s: Cow<'_, str>) -> ShortText {
        match s {
            Cow::Borrowed(s) => ShortText::new(s),
            Cow::Owned(s) => s.into(),
        }
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// Quoted and escaped, as a `String`'s (summaries are compared by their `Debug` text).
impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for ShortText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// Equality, order and hash are the `str`'s (never the representation's), as `Borrow<str>`
// requires: a set of `ShortText` can be searched by `&str`.
impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ShortText {}

impl PartialEq<str> for ShortText {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortText {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for ShortText {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<ShortText> for str {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<ShortText> for &str {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<ShortText> for String {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for ShortText {
    fn partial_cmp(&self, other: &ShortText) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShortText {
    fn cmp(&self, other: &ShortText) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for ShortText {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::HashSet;

    fn hash_of<T: Hash + ?Sized>(x: &T) -> u64 {
        let mut h = DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    /// Strings on both sides of the inline boundary, ASCII and with a multi-byte character
    /// ending exactly at it or straddling it.
    fn samples() -> Vec<String> {
        let mut v = vec![String::new(), "GET".to_string()];
        for n in [INLINE - 1, INLINE, INLINE + 1, 2 * INLINE, 300] {
            v.push("a".repeat(n));
        }
        // "é" is 2 bytes, "€" 3, "😀" 4: each ending at INLINE - 1, INLINE, INLINE + 1.
        for c in ["é", "€", "😀"] {
            for end in [INLINE - 1, INLINE, INLINE + 1] {
                v.push(format!("{}{}", "x".repeat(end - c.len()), c));
            }
        }
        v
    }

    #[test]
    fn inline_exactly_up_to_the_boundary_in_bytes() {
        for s in samples() {
            for t in [
                ShortText::new(&s),
                ShortText::from(s.as_str()),
                ShortText::from(s.clone()),
                ShortText::from(String::from_utf8_lossy(s.as_bytes())),
            ] {
                assert_eq!(t.as_str(), s, "round trip of {:?}", s);
                assert_eq!(t.len(), s.len());
                assert_eq!(t.is_inline(), s.len() <= INLINE, "{} bytes", s.len());
                assert_eq!(t.clone().as_str(), s);
            }
        }
        assert_eq!(std::mem::size_of::<ShortText>(), 32);
        assert_eq!(std::mem::size_of::<Option<ShortText>>(), 32);
    }

    #[test]
    fn concat_joins_inline_or_on_the_heap() {
        let head = "x-forwarded-for: ";
        for s in samples() {
            let t = ShortText::concat(&[head, &s]);
            assert_eq!(t.as_str(), format!("{}{}", head, s));
            assert_eq!(t.is_inline(), head.len() + s.len() <= INLINE);
        }
        // A multi-byte character split across parts at the boundary stays whole.
        let t = ShortText::concat(&["y".repeat(INLINE - 2).as_str(), "é"]);
        assert!(t.is_inline());
        assert_eq!(&*t, format!("{}é", "y".repeat(INLINE - 2)));
        let t = ShortText::concat(&["y".repeat(INLINE - 1).as_str(), "é"]);
        assert!(!t.is_inline());
        assert_eq!(&*t, format!("{}é", "y".repeat(INLINE - 1)));
        assert_eq!(ShortText::concat(&[]), "");
    }

    #[test]
    fn invalid_utf8_is_replaced_as_by_string() {
        // U+FFFD takes 3 bytes: one bad byte after INLINE - 3 or INLINE - 2 others lands on
        // either side of the boundary.
        let mut inputs = vec![b"caf\xc3".to_vec(), b"\xff\xfe".to_vec()];
        for n in [INLINE - 3, INLINE - 2, INLINE] {
            inputs.push([vec![b'a'; n], b"\xff".to_vec()].concat());
        }
        for b in &inputs {
            let t = ShortText::from(String::from_utf8_lossy(b));
            let s = String::from_utf8_lossy(b);
            assert_eq!(t, *s);
            assert_eq!(t.is_inline(), s.len() <= INLINE);
        }
    }

    #[test]
    fn compares_orders_and_hashes_as_str() {
        let all = samples();
        for a in &all {
            let ta = ShortText::from(a.as_str());
            assert_eq!(hash_of(&ta), hash_of(a.as_str()), "{:?}", a);
            assert_eq!(hash_of(&ta), hash_of(a), "{:?}", a);
            assert!(ta == *a.as_str() && ta == a.as_str() && ta == *a);
            assert!(*a.as_str() == ta && a.as_str() == ta && *a == ta);
            for b in &all {
                let tb = ShortText::from(b.as_str());
                assert_eq!(ta == tb, a == b, "{:?} == {:?}", a, b);
                assert_eq!(ta.cmp(&tb), a.cmp(b), "{:?} cmp {:?}", a, b);
                assert_eq!(ta.partial_cmp(&tb), a.partial_cmp(b));
            }
        }
        // Found by `&str` in a set (`Borrow<str>` with the same hash and equality).
        let set: HashSet<ShortText> = all.iter().map(|s| ShortText::from(s.as_str())).collect();
        for s in &all {
            assert!(set.contains(s.as_str()));
        }
        assert!(!set.contains("absent"));
        let mut sorted: Vec<ShortText> = all.iter().rev().map(|s| s.as_str().into()).collect();
        sorted.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(sorted, want);
    }

    #[test]
    fn prints_and_serializes_as_a_string() {
        for s in samples()
            .into_iter()
            .chain(["quote \" back\\slash\ttab\n\u{7f}\u{1}é".to_string()])
        {
            let t = ShortText::from(s.as_str());
            assert_eq!(format!("{:?}", t), format!("{:?}", s));
            assert_eq!(format!("{}", t), s);
            assert_eq!(format!("{:>40}|{:<3}", t, t), format!("{:>40}|{:<3}", s, s));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
            assert_eq!(
                serde_json::to_string(&Some(t)).unwrap(),
                serde_json::to_string(&Some(s)).unwrap()
            );
        }
        assert_eq!(ShortText::default(), "");
        assert!(ShortText::default().is_inline());
    }
}
