//! Split invariance for the application observers: a stream fed in pieces, and the same pieces
//! each cut again at fuzzer-chosen points, must give the same events and the same summary.
//!
//! Input layout (the seeds from `make-seeds.py` follow it): 8 bytes of seed (little endian) for
//! the interleaving and split points, 2 bytes little-endian length of the originator's stream,
//! that many bytes, then the responder's stream.

use crate::Rng;
use proxyscope::flow::{Direction, FrameRef};

/// What is fed, in order: data of one direction in frame `frame`, or a capture gap.
#[derive(Clone, Debug)]
pub enum Step<'a> {
    Data {
        dir: Direction,
        frame: u64,
        bytes: &'a [u8],
    },
    Gap {
        dir: Direction,
        frame: u64,
        len: u32,
    },
}

/// A parsed input: the piece-level plan, and the random source for the second cut.
pub struct Plan<'a> {
    pub steps: Vec<Step<'a>>,
    pub seed: u64,
}

pub fn plan(data: &[u8]) -> Option<Plan<'_>> {
    if data.len() < 10 {
        return None;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().ok()?);
    let olen = u16::from_le_bytes([data[8], data[9]]) as usize;
    let rest = &data[10..];
    let (mut orig, mut resp) = rest.split_at(olen.min(rest.len()));
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut frame = 1;
    while !orig.is_empty() || !resp.is_empty() {
        // Mostly whole requests / responses in turn; sometimes small pieces.
        let from_orig = if orig.is_empty() {
            false
        } else if resp.is_empty() {
            true
        } else {
            rng.below(2) == 0
        };
        let (dir, s) = if from_orig {
            (Direction::Orig, &mut orig)
        } else {
            (Direction::Resp, &mut resp)
        };
        let n = match rng.below(4) {
            0 => 1 + rng.below(8),
            1 => 1 + rng.below(200),
            _ => 1 + rng.below(4096),
        }
        .min(s.len());
        let (piece, tail) = s.split_at(n);
        *s = tail;
        // A rare capture gap before a piece (the same in both runs).
        if rng.below(64) == 0 {
            let len = 1 + rng.below(3000) as u32;
            steps.push(Step::Gap { dir, frame, len });
        }
        steps.push(Step::Data {
            dir,
            frame,
            bytes: piece,
        });
        frame += 1;
    }
    Some(Plan {
        steps,
        seed: seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15,
    })
}

pub fn frame_ref(n: u64) -> FrameRef {
    FrameRef {
        file: 0,
        number: n,
        ts: proxyscope::time::Timestamp(1_700_000_000_000_000_000 + n as i64 * 1_000_000),
    }
}

/// Feeds the plan (`split`: each data piece cut again into random sub-chunks, all in the piece's
/// frame) through `feed` (`None` bytes = a gap).
pub fn run(
    plan: &Plan<'_>,
    split: bool,
    mut feed: impl FnMut(Direction, FrameRef, Result<&[u8], u32>),
) {
    let mut rng = Rng::new(plan.seed);
    for s in &plan.steps {
        match *s {
            Step::Gap { dir, frame, len } => feed(dir, frame_ref(frame), Err(len)),
            Step::Data { dir, frame, bytes } => {
                let fr = frame_ref(frame);
                if !split {
                    feed(dir, fr, Ok(bytes));
                    continue;
                }
                let mut b = bytes;
                while !b.is_empty() {
                    let n = match rng.below(3) {
                        0 => 1,
                        1 => 1 + rng.below(16),
                        _ => 1 + rng.below(b.len()),
                    }
                    .min(b.len());
                    feed(dir, fr, Ok(&b[..n]));
                    b = &b[n..];
                }
            }
        }
    }
}
