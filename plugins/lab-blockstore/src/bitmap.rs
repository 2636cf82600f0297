//! Block presence bitmaps, one per layer.

/// A growable set of block numbers stored as little-endian 64-bit words. Missing trailing
/// words read as zero, so an empty layer costs nothing in memory or on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    pub fn new() -> Self {
        Bitmap::default()
    }

    /// Parses the on-disk form, dropping any bits at or beyond `nbits`.
    pub fn from_bytes(bytes: &[u8], nbits: u64) -> Self {
        let mut words: Vec<u64> = bytes
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        let full = (nbits / 64) as usize;
        if words.len() > full {
            let rem = nbits % 64;
            if rem == 0 {
                words.truncate(full);
            } else {
                words.truncate(full + 1);
                words[full] &= (1u64 << rem) - 1;
            }
        }
        let mut b = Bitmap { words };
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    /// The on-disk form (trailing zero words dropped).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        let end = self
            .words
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1);
        for w in &self.words[..end] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn get(&self, bit: u64) -> bool {
        self.words
            .get((bit / 64) as usize)
            .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
    }

    /// Sets bits `start..end`.
    pub fn set_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let last_word = ((end - 1) / 64) as usize;
        if self.words.len() <= last_word {
            self.words.resize(last_word + 1, 0);
        }
        let mut bit = start;
        while bit < end {
            let wi = (bit / 64) as usize;
            let lo = bit % 64;
            let hi = (end - wi as u64 * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            self.words[wi] |= mask;
            bit = wi as u64 * 64 + hi;
        }
    }

    pub fn union_with(&mut self, other: &Bitmap) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Bits set in `self` but not in `other`.
    pub fn minus(&self, other: &Bitmap) -> Bitmap {
        let mut words: Vec<u64> = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| w & !other.words.get(i).copied().unwrap_or(0))
            .collect();
        while words.last() == Some(&0) {
            words.pop();
        }
        Bitmap { words }
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    fn next_set(&self, from: u64) -> Option<u64> {
        let mut wi = (from / 64) as usize;
        let mut w = *self.words.get(wi)? & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                return Some(wi as u64 * 64 + w.trailing_zeros() as u64);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }

    fn next_clear(&self, from: u64) -> u64 {
        let mut wi = (from / 64) as usize;
        let Some(first) = self.words.get(wi) else {
            return from;
        };
        let mut w = !first & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                return wi as u64 * 64 + w.trailing_zeros() as u64;
            }
            wi += 1;
            match self.words.get(wi) {
                Some(x) => w = !x,
                None => return wi as u64 * 64,
            }
        }
    }

    /// Maximal runs `[start, end)` of set bits, in order.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(s) = self.next_set(pos) {
            let e = self.next_clear(s);
            out.push((s, e));
            pos = e;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_runs_roundtrip() {
        let mut b = Bitmap::new();
        b.set_range(3, 5);
        b.set_range(63, 130);
        b.set_range(200, 201);
        assert!(!b.get(2) && b.get(3) && b.get(4) && !b.get(5));
        assert!(b.get(63) && b.get(64) && b.get(129) && !b.get(130));
        assert_eq!(b.runs(), vec![(3, 5), (63, 130), (200, 201)]);
        let c = Bitmap::from_bytes(&b.to_bytes(), 1000);
        assert_eq!(c.runs(), b.runs());
        let d = Bitmap::from_bytes(&b.to_bytes(), 100);
        assert_eq!(d.runs(), vec![(3, 5), (63, 100)]);
        let mut e = Bitmap::new();
        e.set_range(0, 64);
        assert_eq!(e.runs(), vec![(0, 64)]);
        assert_eq!(b.minus(&e).runs(), vec![(64, 130), (200, 201)]);
        e.union_with(&b);
        assert_eq!(e.runs(), vec![(0, 130), (200, 201)]);
        assert!(Bitmap::new().is_empty() && Bitmap::new().runs().is_empty());
    }
}
