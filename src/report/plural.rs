//! Counts with nouns for people: `1 target`, `2 targets`, `1 retry`, `3 retries`.

/// A count of things (any unsigned integer type).
pub trait Count {
    fn count(self) -> u64;
}

impl Count for u64 {
    fn count(self) -> u64 {
        self
    }
}

impl Count for u32 {
    fn count(self) -> u64 {
        u64::from(self)
    }
}

impl Count for usize {
    fn count(self) -> u64 {
        self as u64
    }
}

/// `n` and `noun` (given in the singular), the noun in the plural unless `n` is 1:
/// `plural(1u64, "shard")` is `1 shard`, `plural(0, "shard")` is `0 shards`.
pub fn plural(n: impl Count, noun: &str) -> String {
    let n = n.count();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {}", plural_of(noun))
    }
}

/// [`plural`] with the verb: `1 unit was`, `2 units were`.
pub fn plural_were(n: impl Count, noun: &str) -> String {
    let n = n.count();
    format!("{} {}", plural(n, noun), if n == 1 { "was" } else { "were" })
}

/// The English plural of a singular noun (the regular rules; etd's nouns need no others).
pub fn plural_of(noun: &str) -> String {
    let bytes = noun.as_bytes();
    let consonant_y = bytes.len() >= 2
        && bytes[bytes.len() - 1] == b'y'
        && !matches!(bytes[bytes.len() - 2], b'a' | b'e' | b'i' | b'o' | b'u');
    if consonant_y {
        format!("{}ies", &noun[..noun.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"].iter().any(|end| noun.ends_with(end)) {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_only_for_one() {
        assert_eq!(plural(1u64, "target"), "1 target");
        assert_eq!(plural(0u64, "target"), "0 targets");
        assert_eq!(plural(2u64, "shard"), "2 shards");
        assert_eq!(plural(1u64, "retry"), "1 retry");
        assert_eq!(plural(3u64, "retry"), "3 retries");
        assert_eq!(plural(2u64, "entry"), "2 entries");
        assert_eq!(plural(2u64, "key"), "2 keys");
        assert_eq!(plural(2u64, "batch"), "2 batches");
        assert_eq!(plural(2u64, "index"), "2 indexes");
        assert_eq!(plural(5u64, "object"), "5 objects");
        assert_eq!(plural(1usize, "unit"), "1 unit");
        assert_eq!(plural(2u32, "retry"), "2 retries");
    }
}
