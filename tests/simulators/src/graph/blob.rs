//! Block blobs of the content storage: Put Block, Put Block List and its XML body.
//!
//! The rules are those of the Azure Storage REST API: a block id is base64 of at most 64
//! bytes, the ids of one blob have one length, and a blob has at most 50,000 committed
//! blocks. Put Block List names each block as `Latest` (uncommitted, else committed),
//! `Committed` or `Uncommitted`, and drops the uncommitted blocks it does not name.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::storage::StorageError;

/// Largest decoded block id.
const MAX_BLOCK_ID_BYTES: usize = 64;
/// Most committed blocks in one blob.
const MAX_COMMITTED_BLOCKS: usize = 50_000;
/// Most uncommitted blocks one blob keeps.
// NOTE: 100,000 is a recalled Azure limit, not checked against the Put Block reference.
const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;

/// A block blob: uncommitted blocks from Put Block and the blocks of the last Put Block
/// List, whose concatenation is the blob's content.
#[derive(Debug, Clone, Default)]
pub(crate) struct Blob {
    uncommitted: HashMap<Vec<u8>, Bytes>,
    committed: Vec<(Vec<u8>, Bytes)>,
    /// Decoded length of the first block id, which every later id must have.
    block_id_length: Option<usize>,
    /// Whether a Put Block List succeeded, so the blob exists.
    exists: bool,
}

/// Where a block list entry may find its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockSource {
    Latest,
    Committed,
    Uncommitted,
}

impl BlockSource {
    /// Returns which blocks the entry may name, in words.
    fn describe(self) -> &'static str {
        match self {
            BlockSource::Latest => "committed or uncommitted",
            BlockSource::Committed => "committed",
            BlockSource::Uncommitted => "uncommitted",
        }
    }
}

impl Blob {
    /// Returns the blob's content, or `None` before the first Put Block List.
    pub fn content(&self) -> Option<Vec<u8>> {
        self.exists.then(|| {
            let mut content = Vec::new();
            for (_, block) in &self.committed {
                content.extend_from_slice(block);
            }
            content
        })
    }

    /// Returns whether a Put Block List created the blob.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Returns the number of bytes of the committed content.
    pub fn committed_length(&self) -> u64 {
        self.committed
            .iter()
            .map(|(_, block)| block.len() as u64)
            .sum()
    }

    /// Stores an uncommitted block, replacing an uncommitted block with the same id.
    pub(crate) fn put_block(&mut self, block_id: &str, data: Bytes) -> Result<(), StorageError> {
        let id = decode_block_id(block_id)?;
        if let Some(length) = self.block_id_length {
            if id.len() != length {
                return Err(StorageError::invalid_block(format!(
                    "Block id '{block_id}' decodes to {} bytes but earlier block ids of this \
                     blob decode to {length}; every block id of a blob must have one length.",
                    id.len()
                )));
            }
        }
        if !self.uncommitted.contains_key(&id) && self.uncommitted.len() >= MAX_UNCOMMITTED_BLOCKS {
            return Err(StorageError::new(
                StatusCode::CONFLICT,
                "BlockCountExceedsLimit",
                format!(
                    "The blob already has {MAX_UNCOMMITTED_BLOCKS} uncommitted blocks; commit \
                     them with Put Block List first."
                ),
            ));
        }
        self.block_id_length = Some(id.len());
        self.uncommitted.insert(id, data);
        Ok(())
    }

    /// Commits the blocks a Put Block List body names, in order, and drops every other
    /// uncommitted block.
    pub(crate) fn put_block_list(&mut self, body: &[u8]) -> Result<(), StorageError> {
        let entries = parse_block_list(body)?;
        if entries.len() > MAX_COMMITTED_BLOCKS {
            return Err(StorageError::invalid_block_list(format!(
                "The block list has {} blocks, but a blob has at most {MAX_COMMITTED_BLOCKS}.",
                entries.len()
            )));
        }
        let committed: HashMap<&Vec<u8>, &Bytes> =
            self.committed.iter().map(|(id, data)| (id, data)).collect();
        let mut blocks = Vec::with_capacity(entries.len());
        for (source, text) in &entries {
            let id = decode_block_id(text)
                .map_err(|error| StorageError::invalid_block_list(error.message))?;
            let uncommitted = self.uncommitted.get(&id);
            let found = match source {
                BlockSource::Latest => uncommitted.or_else(|| committed.get(&id).copied()),
                BlockSource::Uncommitted => uncommitted,
                BlockSource::Committed => committed.get(&id).copied(),
            };
            let data = found.ok_or_else(|| {
                StorageError::invalid_block_list(format!(
                    "The block list names block id '{text}', which is not among the blob's \
                     {} blocks; upload it with Put Block first.",
                    source.describe()
                ))
            })?;
            blocks.push((id, data.clone()));
        }
        self.committed = blocks;
        self.uncommitted.clear();
        self.exists = true;
        Ok(())
    }
}

fn decode_block_id(text: &str) -> Result<Vec<u8>, StorageError> {
    let id = BASE64.decode(text).map_err(|error| {
        StorageError::invalid_query(
            "blockid",
            format!(
                "The block id '{text}' is not valid base64 ({error}); percent-encode the \
                 base64 value in the URL."
            ),
        )
    })?;
    if id.is_empty() || id.len() > MAX_BLOCK_ID_BYTES {
        return Err(StorageError::invalid_query(
            "blockid",
            format!(
                "The block id '{text}' decodes to {} bytes; it must have 1 to \
                 {MAX_BLOCK_ID_BYTES}.",
                id.len()
            ),
        ));
    }
    Ok(id)
}

/// Reads `<BlockList><Latest>id</Latest>…</BlockList>` with `Latest`, `Committed` and
/// `Uncommitted` entries.
fn parse_block_list(body: &[u8]) -> Result<Vec<(BlockSource, String)>, StorageError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::invalid_xml("The block list is not UTF-8 text."))?;
    let mut rest = text.trim_start_matches('\u{feff}').trim();
    if rest.starts_with("<?xml") {
        let end = rest
            .find("?>")
            .ok_or_else(|| StorageError::invalid_xml("The XML declaration is not closed."))?;
        rest = rest[end + 2..].trim_start();
    }
    rest = rest
        .strip_prefix("<BlockList>")
        .ok_or_else(|| StorageError::invalid_xml("The root element must be <BlockList>."))?;
    let mut entries = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("</BlockList>") {
            if !after.trim().is_empty() {
                return Err(StorageError::invalid_xml(
                    "Content follows the closing </BlockList> tag.",
                ));
            }
            return Ok(entries);
        }
        let (source, name) = if rest.starts_with("<Latest>") {
            (BlockSource::Latest, "Latest")
        } else if rest.starts_with("<Committed>") {
            (BlockSource::Committed, "Committed")
        } else if rest.starts_with("<Uncommitted>") {
            (BlockSource::Uncommitted, "Uncommitted")
        } else {
            let excerpt: String = rest.chars().take(40).collect();
            return Err(StorageError::invalid_xml(format!(
                "Expected <Latest>, <Committed>, <Uncommitted> or </BlockList> at '{excerpt}'."
            )));
        };
        rest = &rest[name.len() + 2..];
        let close = format!("</{name}>");
        let end = rest.find(&close).ok_or_else(|| {
            StorageError::invalid_xml(format!("The <{name}> element is not closed."))
        })?;
        entries.push((source, unescape_xml(rest[..end].trim())?));
        rest = &rest[end + close.len()..];
    }
}

/// Replaces the five predefined XML entities and numeric character references.
fn unescape_xml(text: &str) -> Result<String, StorageError> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        output.push_str(&rest[..start]);
        let end = rest[start..]
            .find(';')
            .ok_or_else(|| StorageError::invalid_xml("An XML entity is not closed with ';'."))?;
        let entity = &rest[start + 1..start + end];
        let character = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16).ok())
                .unwrap_or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        let character = character.ok_or_else(|| {
            StorageError::invalid_xml(format!("Unknown XML entity '&{entity};'."))
        })?;
        output.push(character);
        rest = &rest[start + end + 1..];
    }
    output.push_str(rest);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> String {
        BASE64.encode(text)
    }

    fn put(blob: &mut Blob, block: &str, data: &'static [u8]) {
        blob.put_block(&id(block), Bytes::from_static(data))
            .unwrap();
    }

    #[test]
    fn block_list_orders_content() {
        let mut blob = Blob::default();
        put(&mut blob, "0001", b"world");
        put(&mut blob, "0000", b"hello ");
        let list = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{}</Latest>\n  \
             <Latest>{}</Latest></BlockList>",
            id("0000"),
            id("0001")
        );
        blob.put_block_list(list.as_bytes()).unwrap();
        assert_eq!(blob.content().as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn blob_has_no_content_before_block_list() {
        let mut blob = Blob::default();
        put(&mut blob, "0000", b"x");
        assert_eq!(blob.content(), None);
    }

    #[test]
    fn block_ids_need_one_length() {
        let mut blob = Blob::default();
        put(&mut blob, "0000", b"x");
        let error = blob
            .put_block(&id("00001"), Bytes::from_static(b"y"))
            .unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "InvalidBlobOrBlock");
    }

    #[test]
    fn block_list_rejects_unknown_block() {
        let mut blob = Blob::default();
        put(&mut blob, "0000", b"x");
        let list = format!("<BlockList><Latest>{}</Latest></BlockList>", id("0001"));
        let error = blob.put_block_list(list.as_bytes()).unwrap_err();
        assert_eq!(error.code, "InvalidBlockList");
        assert_eq!(blob.content(), None, "a failed list changes nothing");
    }

    #[test]
    fn committed_blocks_can_be_listed_again() {
        let mut blob = Blob::default();
        put(&mut blob, "0000", b"a");
        let first = format!("<BlockList><Latest>{}</Latest></BlockList>", id("0000"));
        blob.put_block_list(first.as_bytes()).unwrap();
        put(&mut blob, "0001", b"b");
        let second = format!(
            "<BlockList><Committed>{}</Committed><Uncommitted>{}</Uncommitted></BlockList>",
            id("0000"),
            id("0001")
        );
        blob.put_block_list(second.as_bytes()).unwrap();
        assert_eq!(blob.content().as_deref(), Some(&b"ab"[..]));
    }

    #[test]
    fn block_list_xml_errors() {
        let cases = [
            "<List><Latest>AA==</Latest></List>",
            "<BlockList><Latest>AA==</BlockList>",
            "<BlockList><Other>AA==</Other></BlockList>",
            "<BlockList></BlockList>trailing",
        ];
        for case in cases {
            let error = parse_block_list(case.as_bytes()).unwrap_err();
            assert_eq!(error.code, "InvalidXmlDocument", "{case}");
        }
    }

    #[test]
    fn block_list_unescapes_entities() {
        let entries =
            parse_block_list(b"<BlockList><Latest>a&#x2B;b&amp;</Latest></BlockList>").unwrap();
        assert_eq!(entries, [(BlockSource::Latest, "a+b&".to_string())]);
    }

    #[test]
    fn block_id_must_be_base64() {
        let mut blob = Blob::default();
        let error = blob
            .put_block("not base64!", Bytes::from_static(b"x"))
            .unwrap_err();
        assert_eq!(error.code, "InvalidQueryParameterValue");
    }
}
