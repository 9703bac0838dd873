//! DRF `CursorPagination` as atlasserver's `TaskPagination` extends it, over task ids.
//!
//! Cursors are DRF's: standard base64 of a query string with `o` (offset), `r` (reverse) and
//! `p` (position). Positions are task ids (the list is ordered by id, see the module docs of
//! `atlas_fp` for the `?ordering=timestamp` simplification).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub offset: usize,
    pub reverse: bool,
    pub position: Option<u64>,
}

/// DRF's `offset_cutoff`.
const OFFSET_CUTOFF: usize = 1000;

pub(crate) fn encode(c: &Cursor) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if c.offset != 0 {
        q.append_pair("o", &c.offset.to_string());
    }
    if c.reverse {
        q.append_pair("r", "1");
    }
    if let Some(p) = c.position {
        q.append_pair("p", &p.to_string());
    }
    STANDARD.encode(q.finish())
}

/// `None` for anything DRF would answer with 404 "Invalid cursor".
pub(crate) fn decode(s: &str) -> Option<Cursor> {
    let bytes = STANDARD.decode(s.trim()).ok()?;
    let text = String::from_utf8(bytes).ok().filter(|t| t.is_ascii())?;
    let first =
        |k: &str| url::form_urlencoded::parse(text.as_bytes()).find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    let offset = match first("o") {
        Some(o) => {
            let n: i64 = o.trim().parse().ok()?;
            usize::try_from(n).ok()?.min(OFFSET_CUTOFF)
        }
        None => 0,
    };
    let reverse = match first("r") {
        Some(r) => r.trim().parse::<i64>().ok()? != 0,
        None => false,
    };
    let position = match first("p") {
        Some(p) => Some(p.trim().parse::<u64>().ok()?),
        None => None,
    };
    Some(Cursor { offset, reverse, position })
}

pub(crate) enum Previous {
    /// `previous_is_top`: the link is the list URL without a cursor.
    Top,
    Cursor(Cursor),
}

pub(crate) struct Page {
    pub ids: Vec<u64>,
    pub next: Option<Cursor>,
    pub previous: Option<Previous>,
    /// `pagefirsttaskposition`: how many tasks precede this page.
    pub first_position: usize,
}

/// One page of `ids` (already in display order; `descending` says which way that is).
pub(crate) fn paginate(ids: &[u64], descending: bool, size: usize, cursor: Option<&Cursor>) -> Page {
    let before = |a: u64, b: u64| if descending { a > b } else { a < b };
    let (offset, reverse, position) = cursor.map_or((0, false, None), |c| (c.offset, c.reverse, c.position));
    let candidates: Vec<u64> = match (reverse, position) {
        (false, None) => ids.to_vec(),
        (false, Some(p)) => ids.iter().copied().filter(|&id| before(p, id)).collect(),
        (true, None) => ids.iter().rev().copied().collect(),
        (true, Some(p)) => ids.iter().rev().copied().filter(|&id| before(id, p)).collect(),
    };
    let results: Vec<u64> = candidates.iter().copied().skip(offset).take(size + 1).collect();
    let mut page: Vec<u64> = results.iter().copied().take(size).collect();

    let mut first_position = offset;
    if let Some(p) = position {
        if reverse {
            let strictly_before = ids.iter().filter(|&&id| before(id, p)).count();
            first_position += strictly_before.saturating_sub(page.len());
        } else {
            first_position += ids.iter().filter(|&&id| id == p || before(id, p)).count();
        }
    }
    let previous_is_top = position.is_some() && first_position <= size;
    let following = (results.len() > page.len()).then(|| results.last().copied()).flatten();

    let (has_next, has_previous, next_position, previous_position) = if reverse {
        page.reverse();
        (position.is_some() || offset > 0, following.is_some(), position, following)
    } else {
        (following.is_some(), position.is_some() || offset > 0, following, position)
    };
    let cur = Cursor { offset, reverse, position };
    let next = has_next.then(|| {
        let mut compare = if !page.is_empty() && reverse && offset > 0 { page.last().copied() } else { next_position };
        let (mut off, mut pos, mut unique) = (0, None, false);
        for &item in page.iter().rev() {
            pos = Some(item);
            if Some(item) != compare {
                unique = true;
                break;
            }
            compare = Some(item);
            off += 1;
        }
        if !page.is_empty() && !unique {
            if !has_previous {
                (off, pos) = (size, None);
            } else if cur.reverse {
                (off, pos) = (0, previous_position);
            } else {
                (off, pos) = (cur.offset + size, previous_position);
            }
        }
        if page.is_empty() {
            pos = next_position;
        }
        Cursor { offset: off, reverse: false, position: pos }
    });
    let previous = has_previous.then(|| {
        if previous_is_top {
            return Previous::Top;
        }
        let mut compare =
            if !page.is_empty() && !reverse && offset > 0 { page.first().copied() } else { previous_position };
        let (mut off, mut pos, mut unique) = (0, None, false);
        for &item in &page {
            pos = Some(item);
            if Some(item) != compare {
                unique = true;
                break;
            }
            compare = Some(item);
            off += 1;
        }
        if !page.is_empty() && !unique {
            if !has_next {
                (off, pos) = (size, None);
            } else if cur.reverse {
                (off, pos) = (cur.offset + size, next_position);
            } else {
                (off, pos) = (0, next_position);
            }
        }
        if page.is_empty() {
            pos = previous_position;
        }
        Previous::Cursor(Cursor { offset: off, reverse: true, position: pos })
    });
    Page { ids: page, next, previous, first_position }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor { offset: 2, reverse: true, position: Some(17) };
        assert_eq!(encode(&c), STANDARD.encode("o=2&r=1&p=17"));
        assert_eq!(decode(&encode(&c)), Some(c));
        assert_eq!(decode("!!"), None);
        assert_eq!(decode(&STANDARD.encode("p=abc")), None);
        assert_eq!(decode(&STANDARD.encode("o=-1")), None);
    }

    #[test]
    fn walk_forward_and_back() {
        let ids: Vec<u64> = (1..=20).rev().collect(); // newest first, like ordering=-id
        let mut cursor = None;
        let mut seen: Vec<u64> = Vec::new();
        let mut pages = Vec::new();
        loop {
            let p = paginate(&ids, true, 6, cursor.as_ref());
            assert_eq!(p.first_position, seen.len());
            seen.extend(&p.ids);
            pages.push(p.ids.clone());
            match p.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        // From the last page, previous links lead back through the same pages.
        let last = paginate(&ids, true, 6, cursor.as_ref());
        let Some(Previous::Cursor(back)) = last.previous else { panic!("expected a cursor") };
        let p = paginate(&ids, true, 6, Some(&back));
        assert_eq!(p.ids, pages[pages.len() - 2]);
        assert_eq!(p.first_position, 12);
        let Some(Previous::Cursor(back)) = p.previous else { panic!("expected a cursor") };
        let p = paginate(&ids, true, 6, Some(&back));
        assert_eq!(p.ids, pages[1]);
        assert!(matches!(p.previous, Some(Previous::Top)));
    }
}
