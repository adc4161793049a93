//! A small deterministic generator (xorshift*) for the bench corpora: the same bytes on
//! every run. Each bench binary uses part of it.
#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
    pub fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
    pub fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }
    pub fn upper(&mut self, n: usize) -> String {
        self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", n)
    }
    pub fn b64(&mut self, n: usize) -> String {
        self.chars(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            n,
        )
    }
    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
    pub fn ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.below(223) + 1,
            self.below(256),
            self.below(256),
            self.below(254) + 1
        )
    }
}
