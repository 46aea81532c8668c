//! Listing pages cut from machines sorted by id. The cursor names the last id of the previous
//! page, so it stays valid when the inventory is read again between two pages: machines
//! present in both reads are listed once, and none of them is skipped.

use vdi_contracts::{ProviderError, ProviderResult};

/// Version prefix of the cursor format; the rest is the hex-encoded last id.
const CURSOR_PREFIX: &str = "m1.";

/// Returns the page of at most `size` items after `cursor` and the cursor of the next page,
/// `None` on the last page. `items` must be sorted by `id`.
///
/// # Errors
/// `invalid` when the cursor was not returned by this provider.
pub fn page<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    cursor: Option<&str>,
    size: usize,
) -> ProviderResult<(&'a [T], Option<String>)> {
    let start = match cursor {
        None => 0,
        Some(cursor) => {
            let after = decode(cursor)?;
            items.partition_point(|item| id(item) <= after.as_str())
        }
    };
    let end = start.saturating_add(size.max(1)).min(items.len());
    let page = &items[start..end];
    let next = match page.last() {
        Some(last) if end < items.len() => Some(encode(id(last))),
        _ => None,
    };
    Ok((page, next))
}

fn encode(id: &str) -> String {
    let mut cursor = String::with_capacity(CURSOR_PREFIX.len() + id.len() * 2);
    cursor.push_str(CURSOR_PREFIX);
    for byte in id.bytes() {
        cursor.push_str(&format!("{byte:02x}"));
    }
    cursor
}

fn decode(cursor: &str) -> ProviderResult<String> {
    let invalid = || {
        ProviderError::invalid(format!(
            "cursor {cursor:?} was not returned by this provider; list the target again \
             without a cursor"
        ))
    };
    let hex = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
    let bytes = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = pair.len() == 2 && pair.iter().all(u8::is_ascii_hexdigit);
            let pair = std::str::from_utf8(pair).ok().filter(|_| digits)?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("cpc-{i:03}")).collect()
    }

    fn all_pages(items: &[String], size: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor = None;
        for _ in 0..100 {
            let (page, next) = page(items, String::as_str, cursor.as_deref(), size).expect("page");
            pages.push(page.to_vec());
            match next {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
        panic!("paging did not end");
    }

    #[test]
    fn pages_cover_every_item_once() {
        let items = ids(7);
        let pages = all_pages(&items, 3);
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(pages.concat(), items);
    }

    #[test]
    fn exact_multiple_has_no_empty_page() {
        let pages = all_pages(&ids(6), 3);
        assert_eq!(pages.len(), 2);
    }

    #[test]
    fn empty_list_is_one_empty_page() {
        let pages = all_pages(&[], 3);
        assert_eq!(pages, vec![Vec::<String>::new()]);
    }

    #[test]
    fn cursor_survives_a_changed_list() {
        let items = ids(6);
        let (_, next) = page(&items, String::as_str, None, 3).expect("first page");
        // cpc-001 left, and cpc-0015 arrived before the cursor, between the two reads.
        let mut changed: Vec<String> = items.iter().filter(|i| *i != "cpc-001").cloned().collect();
        changed.push("cpc-0015".into());
        changed.sort();
        let (second, _) = page(&changed, String::as_str, next.as_deref(), 3).expect("second");
        assert_eq!(second, ["cpc-003", "cpc-004", "cpc-005"]);
    }

    #[test]
    fn cursor_round_trips_any_id() {
        for id in ["HOSP-LT-0001", "ward 3/bed 2", "Ünïcode-ID"] {
            assert_eq!(decode(&encode(id)).expect("decodes"), id);
        }
    }

    #[test]
    fn foreign_cursors_are_invalid() {
        for cursor in ["", "abc", "m1.0", "m1.zz", "m1.+f", "m1.ff", "next-page-2"] {
            let error = decode(cursor).expect_err(cursor);
            assert_eq!(error.kind, vdi_contracts::ErrorKind::Invalid, "{cursor}");
            assert!(error.message.contains("without a cursor"), "{cursor}");
        }
    }
}
