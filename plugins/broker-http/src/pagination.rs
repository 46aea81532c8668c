//! Following cursors to the last page: continuation tokens, `HAS_MORE_RECORDS` page numbers and
//! `@odata.nextLink` all reduce to "fetch with this cursor, get items and the next cursor".

use std::collections::HashSet;
use std::future::Future;

use vdi_contracts::{ProviderError, ProviderResult};

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
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut pages = 0usize;

    loop {
        if pages == max_pages {
            return Err(ProviderError::invalid(format!(
                "listing {what} returned more than {max_pages} pages ({} items so far); \
                 narrow the query or raise the page limit",
                items.len()
            )));
        }
        let (page, next) = fetch(cursor.take()).await?;
        pages += 1;
        items.extend(page);

        let Some(next) = next else {
            return Ok(items);
        };
        if !seen.insert(next.clone()) {
            return Err(ProviderError::invalid(format!(
                "listing {what} returned the cursor {next:?} twice after {pages} pages; \
                 the broker is paging in a loop, so the listing was stopped"
            )));
        }
        cursor = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use vdi_contracts::ErrorKind;

    use super::*;

    type Page = (Vec<u32>, Option<String>);
    type Cursors = Rc<RefCell<Vec<Option<String>>>>;

    /// Returns a fetch function that serves `pages` in order, and the cursors it was given.
    fn serve(
        pages: Vec<Page>,
    ) -> (
        impl FnMut(Option<String>) -> std::future::Ready<ProviderResult<Page>>,
        Cursors,
    ) {
        let mut pages: VecDeque<Page> = pages.into();
        let cursors = Cursors::default();
        let seen = cursors.clone();
        let fetch = move |cursor: Option<String>| {
            seen.borrow_mut().push(cursor);
            let page = pages
                .pop_front()
                .ok_or_else(|| ProviderError::internal("test served every page already"));
            std::future::ready(page)
        };
        (fetch, cursors)
    }

    fn next(cursor: &str) -> Option<String> {
        Some(cursor.to_owned())
    }

    #[tokio::test]
    async fn pages_concatenate_in_order() {
        let (fetch, cursors) = serve(vec![
            (vec![1, 2], next("a")),
            (vec![3], next("b")),
            (vec![4], None),
        ]);
        let items = collect_pages("machines", 10, fetch).await.unwrap();
        assert_eq!(items, vec![1, 2, 3, 4]);
        assert_eq!(*cursors.borrow(), vec![None, next("a"), next("b")]);
    }

    #[tokio::test]
    async fn pages_follow_empty_page_with_cursor() {
        let (fetch, _) = serve(vec![
            (vec![], next("a")),
            (vec![], next("b")),
            (vec![7], None),
        ]);
        let items = collect_pages("machines", 10, fetch).await.unwrap();
        assert_eq!(items, vec![7]);
    }

    #[tokio::test]
    async fn pages_single_empty_page() {
        let (fetch, _) = serve(vec![(vec![], None)]);
        let items = collect_pages("machines", 10, fetch).await.unwrap();
        assert!(items.is_empty());
    }

    #[tokio::test]
    async fn pages_reject_repeated_cursor() {
        let (fetch, _) = serve(vec![
            (vec![1], next("a")),
            (vec![2], next("b")),
            (vec![3], next("a")),
        ]);
        let error = collect_pages("machines", 10, fetch).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(error.message.contains("machines"), "{}", error.message);
        assert!(error.message.contains("\"a\""), "{}", error.message);
    }

    #[tokio::test]
    async fn pages_reject_too_many() {
        let (fetch, cursors) = serve(vec![
            (vec![1], next("a")),
            (vec![2], next("b")),
            (vec![3], next("c")),
        ]);
        let error = collect_pages("tags", 2, fetch).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert!(error.message.contains("tags"), "{}", error.message);
        assert_eq!(cursors.borrow().len(), 2);
    }

    #[tokio::test]
    async fn pages_exactly_at_limit_succeed() {
        let (fetch, _) = serve(vec![(vec![1], next("a")), (vec![2], None)]);
        let items = collect_pages("tags", 2, fetch).await.unwrap();
        assert_eq!(items, vec![1, 2]);
    }

    #[tokio::test]
    async fn pages_return_fetch_error() {
        let mut calls = 0;
        let fetch = |_cursor: Option<String>| {
            calls += 1;
            let result: ProviderResult<Page> = if calls == 1 {
                Ok((vec![1], next("a")))
            } else {
                Err(ProviderError::unavailable("broker down"))
            };
            std::future::ready(result)
        };
        let error = collect_pages("machines", 10, fetch).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unavailable);
    }
}
