//! The words etd records for what failed and where: the `kind` of a failed unit in the fetch
//! journal and in `failures.jsonl`, and the `stage` of a `failures.jsonl` entry. The records on
//! disk keep these as strings (an older or newer etd may have written others); the code that
//! makes them uses these types, so each word is spelled in one place.

use std::fmt;

/// Why a unit failed permanently. Declared in the order of the words, which is the order
/// summaries list them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The archive's answer could not be used (an unparsable table, a bad URL, a payload that
    /// is not what was asked for).
    InvalidAnswer,
    /// The archive has the target but not every filter the recipe asks for.
    MissingFilter,
    /// The archive has no data at the target.
    NoCoverage,
    /// The archive ran the task and found nothing to return (ATLAS "No data returned").
    NoData,
    /// The archive answered 404.
    NotFound,
    /// The archive refused the request (an HTTP 4xx other than 404).
    Refused,
    /// A sample could not be made from fetched data (shard stage).
    Sample,
    /// The archive's task for the unit ended in an error on the server.
    ServerError,
}

impl FailureKind {
    pub const ALL: &'static [FailureKind] = &[
        FailureKind::InvalidAnswer,
        FailureKind::MissingFilter,
        FailureKind::NoCoverage,
        FailureKind::NoData,
        FailureKind::NotFound,
        FailureKind::Refused,
        FailureKind::Sample,
        FailureKind::ServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::InvalidAnswer => "invalid-answer",
            FailureKind::MissingFilter => "missing-filter",
            FailureKind::NoCoverage => "no-coverage",
            FailureKind::NoData => "no-data",
            FailureKind::NotFound => "not-found",
            FailureKind::Refused => "refused",
            FailureKind::Sample => "sample",
            FailureKind::ServerError => "server-error",
        }
    }
}

/// The stage a `failures.jsonl` entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    Shard,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Shard => "shard",
        }
    }
}

macro_rules! word {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl From<$t> for String {
            fn from(w: $t) -> String {
                w.as_str().to_string()
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<$t> for String {
            fn eq(&self, other: &$t) -> bool {
                self == other.as_str()
            }
        }
    };
}

word!(FailureKind);
word!(Stage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_sort_as_their_words() {
        let words: Vec<&str> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        let mut sorted = words.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(words, sorted);
        let mut kinds = FailureKind::ALL.to_vec();
        kinds.reverse();
        kinds.sort();
        assert_eq!(kinds, FailureKind::ALL);
        assert_eq!(String::from(FailureKind::NotFound), "not-found");
        assert_eq!(format!("{} {}", Stage::Fetch, Stage::Shard), "fetch shard");
    }
}
