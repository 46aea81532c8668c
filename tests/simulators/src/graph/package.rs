//! Verification of a committed `.intunewin` content file.
//!
//! The blob a client uploads is the encrypted part of an `.intunewin` package:
//! HMAC-SHA256 (32 bytes) || IV (16 bytes) || AES-256-CBC ciphertext with PKCS#7 padding.
//! The HMAC covers IV || ciphertext and is keyed with `macKey`. The commit request carries
//! the keys and digests as base64 in `fileEncryptionInfo`, with `profileIdentifier`
//! `ProfileVersion1` and `fileDigestAlgorithm` `SHA256`. The plaintext is a zip archive of
//! the app's source folder, so it must contain the app's `setupFilePath`.

use std::fmt;
use std::io::Cursor;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::GraphError;

/// Length of the HMAC-SHA256 at the start of the blob.
const MAC_LENGTH: usize = 32;
/// Length of the AES-CBC initialization vector after the HMAC.
const IV_LENGTH: usize = 16;
/// Length of an AES-256 key.
const KEY_LENGTH: usize = 32;
/// Length of a SHA-256 digest.
const DIGEST_LENGTH: usize = 32;
/// The only `profileIdentifier` Intune defines.
pub(crate) const PROFILE_IDENTIFIER: &str = "ProfileVersion1";
/// The only `fileDigestAlgorithm` Intune defines.
pub(crate) const DIGEST_ALGORITHM: &str = "SHA256";

type Aes256CbcDecryptor = cbc::Decryptor<aes::Aes256>;

/// The decoded `fileEncryptionInfo` of a commit request.
#[derive(Clone)]
pub(crate) struct EncryptionInfo {
    encryption_key: Vec<u8>,
    mac_key: Vec<u8>,
    initialization_vector: Vec<u8>,
    mac: Vec<u8>,
    file_digest: Vec<u8>,
}

// The keys decrypt the package, so `Debug` shows only their lengths.
impl fmt::Debug for EncryptionInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EncryptionInfo")
            .field("encryption_key_length", &self.encryption_key.len())
            .field("mac_key_length", &self.mac_key.len())
            .field(
                "initialization_vector_length",
                &self.initialization_vector.len(),
            )
            .field("mac_length", &self.mac.len())
            .field("file_digest_length", &self.file_digest.len())
            .finish()
    }
}

impl EncryptionInfo {
    /// Reads `fileEncryptionInfo` from a commit request body.
    ///
    /// Fails with 400 when the object or one of its seven properties is missing, when a
    /// binary property is not base64, or when `profileIdentifier` or `fileDigestAlgorithm`
    /// has another value than Intune defines.
    pub fn from_commit_body(body: &Value) -> Result<Self, GraphError> {
        let info = body
            .get("fileEncryptionInfo")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                GraphError::bad_request(
                    "The request body must contain a 'fileEncryptionInfo' object.",
                )
            })?;
        let text = |name: &str| {
            info.get(name)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "The property 'fileEncryptionInfo.{name}' is required and must be a \
                         non-empty string."
                    ))
                })
        };
        let binary = |name: &str| {
            let value = text(name)?;
            BASE64.decode(value).map_err(|error| {
                GraphError::bad_request(format!(
                    "The property 'fileEncryptionInfo.{name}' is not valid base64 ({error}); \
                     send the bytes base64-encoded with padding."
                ))
            })
        };
        let decoded = Self {
            encryption_key: binary("encryptionKey")?,
            mac_key: binary("macKey")?,
            initialization_vector: binary("initializationVector")?,
            mac: binary("mac")?,
            file_digest: binary("fileDigest")?,
        };
        let profile = text("profileIdentifier")?;
        if profile != PROFILE_IDENTIFIER {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{profile}' for 'fileEncryptionInfo.profileIdentifier'; \
                 expected '{PROFILE_IDENTIFIER}'."
            )));
        }
        let algorithm = text("fileDigestAlgorithm")?;
        if algorithm != DIGEST_ALGORITHM {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{algorithm}' for 'fileEncryptionInfo.fileDigestAlgorithm'; \
                 expected '{DIGEST_ALGORITHM}'."
            )));
        }
        Ok(decoded)
    }
}

/// What a commit checks the blob against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// `size` of the content file: the length of the plaintext.
    pub size: u64,
    /// `sizeEncrypted` of the content file: the length of the blob.
    pub size_encrypted: u64,
    /// The app's `setupFilePath`, which the zip must contain. `None` skips the check, as for
    /// dependency files.
    pub setup_file: Option<&'a str>,
}

/// Verifies a committed blob and returns why it is invalid, in words a test can show.
pub(crate) fn verify(
    blob: &[u8],
    info: &EncryptionInfo,
    expected: Expected<'_>,
) -> Result<(), String> {
    let length = blob.len() as u64;
    if length != expected.size_encrypted {
        return Err(format!(
            "the blob has {length} bytes but the file's sizeEncrypted is {}",
            expected.size_encrypted
        ));
    }
    let header = MAC_LENGTH + IV_LENGTH;
    if blob.len() < header + 16 || !(blob.len() - header).is_multiple_of(16) {
        return Err(format!(
            "the blob has {length} bytes, which is not a {header}-byte HMAC and IV header \
             followed by whole 16-byte AES blocks"
        ));
    }
    let (blob_mac, rest) = blob.split_at(MAC_LENGTH);
    let (blob_iv, ciphertext) = rest.split_at(IV_LENGTH);

    if info.initialization_vector != blob_iv {
        return Err(
            "the initializationVector differs from the 16 bytes after the HMAC in the blob"
                .to_string(),
        );
    }
    if info.mac != blob_mac {
        return Err("the mac differs from the first 32 bytes of the blob".to_string());
    }
    let mut hmac = Hmac::<Sha256>::new_from_slice(&info.mac_key)
        .map_err(|error| format!("the macKey cannot key HMAC-SHA256: {error}"))?;
    hmac.update(rest);
    if hmac.verify_slice(blob_mac).is_err() {
        return Err(
            "HMAC-SHA256 of IV and ciphertext under macKey does not match the blob's HMAC"
                .to_string(),
        );
    }

    if info.encryption_key.len() != KEY_LENGTH {
        return Err(format!(
            "the encryptionKey has {} bytes, but AES-256 needs {KEY_LENGTH}",
            info.encryption_key.len()
        ));
    }
    let decryptor = Aes256CbcDecryptor::new_from_slices(&info.encryption_key, blob_iv)
        .map_err(|error| format!("the encryptionKey or IV cannot key AES-256-CBC: {error}"))?;
    let plaintext = decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| {
            "AES-256-CBC decryption with encryptionKey gave invalid PKCS#7 padding".to_string()
        })?;
    if plaintext.len() as u64 != expected.size {
        return Err(format!(
            "the decrypted content has {} bytes but the file's size is {}",
            plaintext.len(),
            expected.size
        ));
    }
    if info.file_digest.len() != DIGEST_LENGTH
        || Sha256::digest(&plaintext).as_slice() != info.file_digest
    {
        return Err("SHA-256 of the decrypted content differs from fileDigest".to_string());
    }

    match expected.setup_file {
        Some(setup_file) => check_setup_file(&plaintext, setup_file),
        None => Ok(()),
    }
}

/// Checks that the zip archive `plaintext` has an entry named `setup_file`.
///
/// Entry names are compared case-insensitively with `\` read as `/`, because the package is
/// built from a Windows folder.
fn check_setup_file(plaintext: &[u8], setup_file: &str) -> Result<(), String> {
    let archive = zip::ZipArchive::new(Cursor::new(plaintext))
        .map_err(|error| format!("the decrypted content is not a zip archive: {error}"))?;
    let expected = normalize_entry_name(setup_file);
    if archive
        .file_names()
        .any(|name| normalize_entry_name(name).eq_ignore_ascii_case(&expected))
    {
        return Ok(());
    }
    Err(format!(
        "the zip archive has no entry '{setup_file}' (the app's setupFilePath) among its {} \
         entries",
        archive.len()
    ))
}

fn normalize_entry_name(name: &str) -> String {
    let slashed = name.replace('\\', "/");
    slashed
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use cbc::cipher::BlockEncryptMut;
    use serde_json::json;
    use zip::write::SimpleFileOptions;

    use super::*;

    /// An encrypted package and the commit body that describes it.
    pub(crate) struct TestPackage {
        pub blob: Vec<u8>,
        pub size: u64,
        pub commit_body: Value,
    }

    /// Builds a stored zip with `entries` and encrypts it as an `.intunewin` content file.
    pub(crate) fn build_package(entries: &[(&str, &[u8])]) -> TestPackage {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, content) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(content).unwrap();
        }
        let plaintext = writer.finish().unwrap().into_inner();

        let key = [7u8; 32];
        let mac_key = [9u8; 32];
        let iv = [3u8; 16];
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
        let mut hmac = Hmac::<Sha256>::new_from_slice(&mac_key).unwrap();
        hmac.update(&iv);
        hmac.update(&ciphertext);
        let mac = hmac.finalize().into_bytes().to_vec();

        let mut blob = mac.clone();
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&ciphertext);
        let commit_body = json!({"fileEncryptionInfo": {
            "encryptionKey": BASE64.encode(key),
            "macKey": BASE64.encode(mac_key),
            "initializationVector": BASE64.encode(iv),
            "mac": BASE64.encode(&mac),
            "profileIdentifier": PROFILE_IDENTIFIER,
            "fileDigest": BASE64.encode(Sha256::digest(&plaintext)),
            "fileDigestAlgorithm": DIGEST_ALGORITHM,
        }});
        TestPackage {
            blob,
            size: plaintext.len() as u64,
            commit_body,
        }
    }

    fn expected<'a>(package: &TestPackage, setup_file: &'a str) -> Expected<'a> {
        Expected {
            size: package.size,
            size_encrypted: package.blob.len() as u64,
            setup_file: Some(setup_file),
        }
    }

    fn info(body: &Value) -> EncryptionInfo {
        EncryptionInfo::from_commit_body(body).unwrap()
    }

    #[test]
    fn verify_accepts_valid_package() {
        let package = build_package(&[("setup\\install.cmd", b"echo hi")]);
        let result = verify(
            &package.blob,
            &info(&package.commit_body),
            expected(&package, "SETUP/install.cmd"),
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn verify_reports_each_fault() {
        let package = build_package(&[("install.cmd", b"echo hi")]);
        let mut tampered = package.blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let mut wrong_mac_key = package.commit_body.clone();
        wrong_mac_key["fileEncryptionInfo"]["macKey"] = json!(BASE64.encode([1u8; 32]));
        let mut wrong_key = package.commit_body.clone();
        wrong_key["fileEncryptionInfo"]["encryptionKey"] = json!(BASE64.encode([2u8; 32]));
        let mut wrong_digest = package.commit_body.clone();
        wrong_digest["fileEncryptionInfo"]["fileDigest"] = json!(BASE64.encode([0u8; 32]));
        let mut wrong_iv = package.commit_body.clone();
        wrong_iv["fileEncryptionInfo"]["initializationVector"] = json!(BASE64.encode([0u8; 16]));

        let cases: [(&str, &[u8], &Value, &str, &str); 7] = [
            (
                "tampered blob",
                &tampered,
                &package.commit_body,
                "install.cmd",
                "HMAC",
            ),
            (
                "wrong macKey",
                &package.blob,
                &wrong_mac_key,
                "install.cmd",
                "HMAC",
            ),
            (
                "wrong key",
                &package.blob,
                &wrong_key,
                "install.cmd",
                "decrypt",
            ),
            (
                "wrong digest",
                &package.blob,
                &wrong_digest,
                "install.cmd",
                "fileDigest",
            ),
            (
                "wrong IV",
                &package.blob,
                &wrong_iv,
                "install.cmd",
                "initializationVector",
            ),
            (
                "missing setup file",
                &package.blob,
                &package.commit_body,
                "setup.exe",
                "setup.exe",
            ),
            (
                "short blob",
                &package.blob[..40],
                &package.commit_body,
                "install.cmd",
                "sizeEncrypted",
            ),
        ];
        for (case, blob, body, setup_file, reason_part) in cases {
            let result = verify(blob, &info(body), expected(&package, setup_file));
            let reason = result.expect_err(case);
            assert!(
                reason.to_lowercase().contains(&reason_part.to_lowercase()),
                "{case}: {reason}"
            );
        }
    }

    #[test]
    fn commit_body_rejects_missing_and_invalid_fields() {
        let package = build_package(&[("install.cmd", b"x")]);
        for field in [
            "encryptionKey",
            "macKey",
            "initializationVector",
            "mac",
            "profileIdentifier",
            "fileDigest",
            "fileDigestAlgorithm",
        ] {
            let mut body = package.commit_body.clone();
            body["fileEncryptionInfo"]
                .as_object_mut()
                .unwrap()
                .remove(field);
            let error = EncryptionInfo::from_commit_body(&body).unwrap_err();
            assert!(error.message.contains(field), "{field}: {}", error.message);
        }
        let mut not_base64 = package.commit_body.clone();
        not_base64["fileEncryptionInfo"]["mac"] = json!("not base64!");
        assert!(EncryptionInfo::from_commit_body(&not_base64).is_err());
        let mut other_profile = package.commit_body.clone();
        other_profile["fileEncryptionInfo"]["profileIdentifier"] = json!("ProfileVersion2");
        assert!(EncryptionInfo::from_commit_body(&other_profile).is_err());
        assert!(EncryptionInfo::from_commit_body(&json!({})).is_err());
    }

    #[test]
    fn debug_hides_keys() {
        let package = build_package(&[("install.cmd", b"x")]);
        let text = format!("{:?}", info(&package.commit_body));
        let key = package.commit_body["fileEncryptionInfo"]["encryptionKey"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!text.contains(&key), "{text}");
        assert!(!text.contains("7, 7, 7"), "{text}");
    }
}
