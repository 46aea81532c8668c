//! Following cursors to the last page: continuation tokens, `HAS_MORE_RECORDS` page numbers and
//! `@odata.nextLink` all reduce to "fetch with this cursor, get items and the next cursor".

use std::future::Future;

use vdi_contracts::ProviderResult;

/// Fetches pages until the next cursor is `None`, tolerating empty pages.
///
/// # Errors
/// Returns the first fetch error; an `invalid` error when a cursor repeats (the broker would
/// loop forever) or more than `max_pages` pages arrive. Messages name `what`.
pub async fn collect_pages<T, F, Fut>(
    what: &str,
    max_pages: usize,
    mut fetch: F,
) -> ProviderResult<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = ProviderResult<(Vec<T>, Option<String>)>>,
{
    let _ = (what, max_pages, &mut fetch);
    unimplemented!()
}
