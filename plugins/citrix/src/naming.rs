//! Names of gateway-owned Citrix objects, and path segment encoding.
//!
//! Every name is derived from (prefix, container id, version, delivery group), so a repeated
//! call finds what an earlier call created instead of creating a twin.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use vdi_contracts::{validate_identifier, validate_version, ContainerRef};

/// Metadata name marking objects the gateway owns.
pub const OWNER_KEY: &str = "vdigw.owner";
/// Value of [`OWNER_KEY`].
pub const OWNER_VALUE: &str = "vdi-gateway";
/// Metadata name holding the container id.
pub const CONTAINER_KEY: &str = "vdigw.container";
/// Metadata name holding the container version.
pub const VERSION_KEY: &str = "vdigw.version";
/// Metadata name holding the delivery group id.
pub const TARGET_KEY: &str = "vdigw.target";

/// Characters left as they are in a path segment: RFC 3986 unreserved characters, and `|`,
/// which the Orchestration API uses in place of `\` and `/` inside `nameOrId` segments.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'|');

/// Encodes a `nameOrId` path segment. Machine names `DOMAIN\NAME` and admin folder paths
/// `Folder\Name` are written with `|` (citrix-daas-rest-go `MachinesAPIsDAAS.md`), and
/// everything else outside the unreserved set is percent-encoded (a space becomes `%20`).
pub fn segment(name_or_id: &str) -> String {
    let piped = name_or_id.replace('\\', "|");
    utf8_percent_encode(&piped, SEGMENT).to_string()
}

/// Returns the machine tag of a container version: `{prefix}:{id}@{version}`. Container ids
/// never contain `@` and versions never contain `:` or `@`, so the tag parses back uniquely.
// NOTE: Citrix documents no maximum tag name length. A 128-character id and a 64-character
// version make a tag of up to 210 characters, which no real site has been tested with.
pub fn version_tag(prefix: &str, container_id: &str, version: &str) -> String {
    format!("{prefix}:{container_id}@{version}")
}

/// Parses a gateway tag of the given prefix into its container and version.
pub fn parse_version_tag(prefix: &str, tag: &str) -> Option<ContainerRef> {
    let rest = tag.strip_prefix(prefix)?.strip_prefix(':')?;
    let (id, version) = rest.split_once('@')?;
    validate_identifier("container.id", id).ok()?;
    validate_version(version).ok()?;
    Some(ContainerRef {
        id: id.to_owned(),
        version: version.to_owned(),
    })
}

/// Maximum length of an object name the gateway creates.
const MAX_OBJECT_NAME: usize = 64;

/// Returns the name of the application group and the application of a container version in a
/// delivery group.
///
/// Names keep to letters, digits, `-` and `_` and at most 64 characters, because Citrix rejects
/// some punctuation in object names (`\` and `|` separate admin folders). Other characters
/// become `_`, and a hash of the exact (container, version, group) keeps names that differ only
/// in those characters apart.
// NOTE: the 64-character limit and the safe character set are conservative guesses; Citrix's
// published models give no length limit for application or application group names.
pub fn object_name(prefix: &str, container: &ContainerRef, group_id: &str) -> String {
    let hash = fnv1a(&format!(
        "{}\n{}\n{}",
        container.id, container.version, group_id
    ));
    let id = sanitize(&container.id, 24);
    let version = sanitize(&container.version, 12);
    let name = format!("{prefix}-{id}-{version}-{hash:08x}");
    debug_assert!(name.len() <= MAX_OBJECT_NAME, "{name}");
    name
}

fn sanitize(raw: &str, max: usize) -> String {
    raw.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 32-bit FNV-1a: stable across builds and platforms, which `std`'s hasher does not promise.
fn fnv1a(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Returns whether a tag entry looks like a GUID, as servers that report tag ids instead of
/// names send.
pub fn looks_like_id(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(id: &str, version: &str) -> ContainerRef {
        ContainerRef {
            id: id.into(),
            version: version.into(),
        }
    }

    #[test]
    fn machine_name_uses_pipe() {
        assert_eq!(segment("HOSP\\EHR-VDA-001"), "HOSP|EHR-VDA-001");
    }

    #[test]
    fn spaces_and_punctuation_are_encoded() {
        assert_eq!(
            segment("EHR Clinicians (ICU)"),
            "EHR%20Clinicians%20%28ICU%29"
        );
        assert_eq!(segment("vdigw:epic@1.0+b2"), "vdigw%3Aepic%401.0%2Bb2");
        assert_eq!(segment("Ärzte"), "%C3%84rzte");
    }

    #[test]
    fn tag_round_trips() {
        let tag = version_tag("vdigw", "epic-hyperspace", "2024.3.1+b7");
        assert_eq!(tag, "vdigw:epic-hyperspace@2024.3.1+b7");
        assert_eq!(
            parse_version_tag("vdigw", &tag),
            Some(reference("epic-hyperspace", "2024.3.1+b7"))
        );
    }

    #[test]
    fn container_id_with_colon_parses() {
        let tag = version_tag("vdigw", "vendor:epic", "1");
        assert_eq!(
            parse_version_tag("vdigw", &tag),
            Some(reference("vendor:epic", "1"))
        );
    }

    #[test]
    fn foreign_tags_are_ignored() {
        assert_eq!(parse_version_tag("vdigw", "ICU-Floor-3"), None);
        assert_eq!(parse_version_tag("vdigw", "vdigwx:epic@1"), None);
        assert_eq!(parse_version_tag("vdigw", "vdigw:epic"), None);
        assert_eq!(parse_version_tag("vdigw", "vdigw:epic@1 2"), None);
    }

    #[test]
    fn object_names_are_stable_and_distinct() {
        let a = object_name("vdigw", &reference("epic", "1.0"), "dg-1");
        assert_eq!(a, object_name("vdigw", &reference("epic", "1.0"), "dg-1"));
        assert_ne!(a, object_name("vdigw", &reference("epic", "1_0"), "dg-1"));
        assert_ne!(a, object_name("vdigw", &reference("epic", "1.0"), "dg-2"));
        assert!(a.starts_with("vdigw-epic-1_0-"), "{a}");
    }

    #[test]
    fn object_names_stay_short() {
        let long = reference(&"a".repeat(128), &"9".repeat(64));
        let name = object_name("abcdefghijklmnop", &long, "dg");
        assert!(name.len() <= MAX_OBJECT_NAME, "{}", name.len());
    }

    #[test]
    fn guid_detection() {
        assert!(looks_like_id("0b1c9a5e-4a33-4c7e-9f61-2d8f3c1a7b90"));
        assert!(!looks_like_id("vdigw:epic@1"));
    }
}
