//! The content package of a gateway-owned Win32 app, built in memory in the format the Win32
//! Content Prep Tool produces. The package is a zip of the setup folder, encrypted with
//! AES-256-CBC (PKCS7 padding) under a random key and IV. The uploaded file is laid out as
//! `HMAC-SHA256(mac key, IV || ciphertext) || IV || ciphertext`. The keys, the MAC and the
//! SHA-256 digest of the zip go to Intune in the commit's `fileEncryptionInfo`.
//!
//! The package contains one script that starts the player for the version and leaves the marker
//! file the app's detection rule checks, so the gateway needs no packaging tool and no file
//! from the operator.

use std::fmt;
use std::io::{Cursor, Write};

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use vdi_contracts::{Container, ProviderError, ProviderResult};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

type Aes256CbcEncryptor = cbc::Encryptor<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// Folder where the install script leaves one marker file per delivered version; the app's
/// detection rule looks for it.
pub const MARKER_ROOT: &str = "C:\\ProgramData\\vdigw";

/// Name of the install script inside the package; it is the app's `setupFilePath`.
pub const SETUP_FILE: &str = "vdigw-install.cmd";

/// Length in bytes of the HMAC-SHA256 that starts the encrypted file.
pub const MAC_LEN: usize = 32;

/// Length in bytes of the AES-CBC initialization vector that follows the MAC.
pub const IV_LEN: usize = 16;

/// Keys and digests Intune needs to verify and decrypt a package (`fileEncryptionInfo`).
/// `Debug` never shows the keys.
#[derive(Clone)]
pub struct EncryptionInfo {
    /// AES-256 key.
    pub encryption_key: [u8; 32],
    /// HMAC-SHA256 key.
    pub mac_key: [u8; 32],
    /// AES-CBC initialization vector.
    pub initialization_vector: [u8; IV_LEN],
    /// HMAC-SHA256 of the IV and the ciphertext.
    pub mac: [u8; MAC_LEN],
    /// SHA-256 of the zip before encryption.
    pub file_digest: [u8; 32],
}

impl EncryptionInfo {
    /// Returns the body of the `commit` action, binary values in base64.
    pub fn commit_body(&self) -> serde_json::Value {
        json!({
            "fileEncryptionInfo": {
                "@odata.type": "#microsoft.graph.fileEncryptionInfo",
                "encryptionKey": STANDARD.encode(self.encryption_key),
                "macKey": STANDARD.encode(self.mac_key),
                "initializationVector": STANDARD.encode(self.initialization_vector),
                "mac": STANDARD.encode(self.mac),
                "profileIdentifier": "ProfileVersion1",
                "fileDigest": STANDARD.encode(self.file_digest),
                "fileDigestAlgorithm": "SHA256",
            }
        })
    }
}

impl fmt::Debug for EncryptionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionInfo")
            .field("encryption_key", &"REDACTED")
            .field("mac_key", &"REDACTED")
            .field("file_digest", &hex::encode(self.file_digest))
            .finish_non_exhaustive()
    }
}

/// An encrypted package, ready to upload.
#[derive(Debug, Clone)]
pub struct ContentPackage {
    /// File name Intune shows, ending in `.intunewin`.
    pub file_name: String,
    /// Size of the zip before encryption.
    pub size: u64,
    /// MAC, IV and ciphertext, as uploaded to storage.
    pub encrypted: Bytes,
    /// Keys and digests the commit sends.
    pub encryption: EncryptionInfo,
}

/// Rejects launch values a `cmd` script cannot carry safely.
fn check_launch(container: &Container) -> ProviderResult<()> {
    let launch = &container.launch;
    let invalid = |field: &str, value: &str, reason: &str| {
        ProviderError::invalid(format!(
            "{}: launch.{field} {value:?} {reason}; it cannot be written into the Intune \
             install script",
            container.reference()
        ))
    };
    for (field, value) in [
        ("executable", Some(launch.executable.as_str())),
        ("arguments", launch.arguments.as_deref()),
        ("working_directory", launch.working_directory.as_deref()),
    ] {
        if let Some(value) = value.filter(|v| v.contains(['\r', '\n'])) {
            return Err(invalid(field, value, "contains a line break"));
        }
    }
    // Both are written inside double quotes, so a quote of their own would end the string.
    for (field, value) in [
        ("executable", Some(launch.executable.as_str())),
        ("working_directory", launch.working_directory.as_deref()),
    ] {
        if let Some(value) = value.filter(|v| v.contains('"')) {
            return Err(invalid(field, value, "contains a double quote"));
        }
    }
    Ok(())
}

/// Builds the install script of a container version: it starts the player detached, so the
/// install ends while the player keeps running, removes the markers of the container's other
/// versions and writes its own. The script fails, and writes no marker, when the player
/// cannot be started.
///
/// # Errors
/// `invalid` when the launch command has characters a `cmd` script cannot carry safely: line
/// breaks anywhere, or a double quote in the executable path or working directory.
pub fn install_script(container: &Container) -> ProviderResult<String> {
    check_launch(container)?;
    let launch = &container.launch;

    // A batch file expands `%NAME%`, so a literal percent sign is written twice.
    let escape = |text: &str| text.replace('%', "%%");
    let folder = format!("{MARKER_ROOT}\\{}", escape(&container.id));
    let marker = format!("{folder}\\{}.ready", escape(&container.version));

    let mut start = String::from("start \"\"");
    if let Some(directory) = &launch.working_directory {
        start.push_str(&format!(" /D \"{}\"", escape(directory)));
    }
    start.push_str(&format!(" \"{}\"", escape(&launch.executable)));
    if let Some(arguments) = &launch.arguments {
        start.push(' ');
        start.push_str(&escape(arguments));
    }

    let lines = [
        "@echo off".to_owned(),
        format!(
            "rem Installed by the VDI broker gateway: container {} version {}.",
            escape(&container.id),
            escape(&container.version)
        ),
        format!("{start} || exit /b 1"),
        format!("if not exist \"{folder}\" mkdir \"{folder}\" || exit /b 1"),
        // Only this version stays detected, so a later install of another version (an
        // update, or a rollback to a version the device had before) runs again.
        format!("del /q \"{folder}\\*.ready\" 2>nul"),
        format!("type nul > \"{marker}\" || exit /b 1"),
        "exit /b 0".to_owned(),
    ];
    Ok(lines.join("\r\n") + "\r\n")
}

/// Builds and encrypts the package of a container version under fresh random keys.
///
/// # Errors
/// `invalid` for a launch command the script cannot carry; `internal` when the zip cannot be
/// written.
pub fn build_package(name: &str, container: &Container) -> ProviderResult<ContentPackage> {
    let script = install_script(container)?;
    let zip = zip_files(&[(SETUP_FILE, script.as_bytes())])?;
    let mut rng = rand::rng();
    let mut encryption_key = [0u8; 32];
    let mut mac_key = [0u8; 32];
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut encryption_key);
    rng.fill_bytes(&mut mac_key);
    rng.fill_bytes(&mut iv);
    let (encrypted, mac) = encrypt(&zip, &encryption_key, &mac_key, &iv)?;
    Ok(ContentPackage {
        file_name: format!("{name}.intunewin"),
        size: zip.len() as u64,
        encrypted,
        encryption: EncryptionInfo {
            encryption_key,
            mac_key,
            initialization_vector: iv,
            mac,
            file_digest: Sha256::digest(&zip).into(),
        },
    })
}

/// Writes a zip with the given entries, stored without compression: the script is a few
/// hundred bytes, and the fixed entry times keep the archive the same for the same input.
fn zip_files(files: &[(&str, &[u8])]) -> ProviderResult<Vec<u8>> {
    let internal =
        |error: zip::result::ZipError| ProviderError::internal(format!("zip failed: {error}"));
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, bytes) in files {
        writer.start_file(*name, options).map_err(internal)?;
        writer
            .write_all(bytes)
            .map_err(|error| ProviderError::internal(format!("zip failed: {error}")))?;
    }
    Ok(writer.finish().map_err(internal)?.into_inner())
}

/// Encrypts `plain` and returns the file to upload and its MAC.
fn encrypt(
    plain: &[u8],
    key: &[u8; 32],
    mac_key: &[u8; 32],
    iv: &[u8; IV_LEN],
) -> ProviderResult<(Bytes, [u8; MAC_LEN])> {
    let ciphertext =
        Aes256CbcEncryptor::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mut hmac = <HmacSha256 as Mac>::new_from_slice(mac_key)
        .map_err(|error| ProviderError::internal(format!("HMAC key rejected: {error}")))?;
    hmac.update(iv);
    hmac.update(&ciphertext);
    let mac: [u8; MAC_LEN] = hmac.finalize().into_bytes().into();
    let mut file = Vec::with_capacity(MAC_LEN + IV_LEN + ciphertext.len());
    file.extend_from_slice(&mac);
    file.extend_from_slice(iv);
    file.extend_from_slice(&ciphertext);
    Ok((Bytes::from(file), mac))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use aes::cipher::BlockDecryptMut;
    use vdi_contracts::Launch;

    use super::*;

    fn container(executable: &str, arguments: Option<&str>) -> Container {
        Container {
            id: "epic-hyperspace".into(),
            version: "2026.11.2".into(),
            display_name: None,
            launch: Launch {
                executable: executable.into(),
                arguments: arguments.map(str::to_owned),
                working_directory: None,
            },
        }
    }

    /// Reverses [`encrypt`] the way Intune does: check the MAC, then decrypt.
    fn decrypt(file: &[u8], info: &EncryptionInfo) -> Vec<u8> {
        let (mac, rest) = file.split_at(MAC_LEN);
        let (iv, ciphertext) = rest.split_at(IV_LEN);
        let mut hmac = <HmacSha256 as Mac>::new_from_slice(&info.mac_key).expect("key");
        hmac.update(iv);
        hmac.update(ciphertext);
        hmac.verify_slice(mac).expect("MAC matches");
        cbc::Decryptor::<aes::Aes256>::new((&info.encryption_key).into(), iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .expect("decrypts")
    }

    #[test]
    fn package_round_trips() {
        let package = build_package(
            "vdigw-epic-2026.11.2",
            &container("C:\\Numecent\\Player.exe", Some("--launch epic")),
        )
        .expect("builds");
        assert_eq!(package.file_name, "vdigw-epic-2026.11.2.intunewin");
        let info = &package.encryption;
        assert_eq!(&package.encrypted[..MAC_LEN], &info.mac[..]);
        assert_eq!(
            &package.encrypted[MAC_LEN..MAC_LEN + IV_LEN],
            &info.initialization_vector[..]
        );

        let zip = decrypt(&package.encrypted, info);
        assert_eq!(zip.len() as u64, package.size);
        assert_eq!(Sha256::digest(&zip).as_slice(), &info.file_digest[..]);

        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("is a zip");
        let mut script = String::new();
        archive
            .by_name(SETUP_FILE)
            .expect("holds the setup file")
            .read_to_string(&mut script)
            .expect("reads");
        assert!(script.contains("start \"\" \"C:\\Numecent\\Player.exe\" --launch epic"));
        assert!(script.contains("C:\\ProgramData\\vdigw\\epic-hyperspace\\2026.11.2.ready"));
    }

    #[test]
    fn packages_use_fresh_keys() {
        let item = container("player.exe", None);
        let first = build_package("a", &item).expect("builds");
        let second = build_package("a", &item).expect("builds");
        assert_ne!(
            first.encryption.encryption_key,
            second.encryption.encryption_key
        );
        assert_ne!(
            first.encryption.initialization_vector,
            second.encryption.initialization_vector
        );
        assert_eq!(first.encryption.file_digest, second.encryption.file_digest);
    }

    #[test]
    fn script_escapes_percent_signs() {
        let script =
            install_script(&container("player.exe", Some("--user %USERNAME%"))).expect("builds");
        assert!(script.contains("--user %%USERNAME%%"), "{script}");
    }

    #[test]
    fn script_rejects_line_breaks() {
        let error =
            install_script(&container("player.exe", Some("a\r\ndel C:\\x"))).expect_err("rejected");
        assert!(
            error.message.contains("launch.arguments"),
            "{}",
            error.message
        );
        assert!(error.message.contains("line break"), "{}", error.message);
    }

    #[test]
    fn script_rejects_quoted_executable() {
        let error =
            install_script(&container("player.exe\" & calc \"", None)).expect_err("rejected");
        assert!(
            error.message.contains("launch.executable"),
            "{}",
            error.message
        );
    }

    #[test]
    fn script_rejects_quoted_working_directory() {
        let mut item = container("player.exe", None);
        item.launch.working_directory = Some("C:\\x\" & calc & \"".into());
        let error = install_script(&item).expect_err("rejected");
        assert!(
            error.message.contains("launch.working_directory"),
            "{}",
            error.message
        );
    }

    #[test]
    fn script_fails_without_player() {
        let script = install_script(&container("player.exe", None)).expect("builds");
        let lines: Vec<&str> = script.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with("start"))
            .expect("start");
        let marker = lines
            .iter()
            .position(|l| l.starts_with("type nul"))
            .expect("marker");
        assert!(start < marker, "the marker follows a successful start");
        assert!(lines[start].ends_with("|| exit /b 1"));
    }

    #[test]
    fn script_clears_other_version_markers() {
        let script = install_script(&container("player.exe", None)).expect("builds");
        let lines: Vec<&str> = script.lines().collect();
        let clear = lines
            .iter()
            .position(|l| l.starts_with("del /q"))
            .expect("clears markers");
        let marker = lines
            .iter()
            .position(|l| l.starts_with("type nul"))
            .expect("marker");
        assert_eq!(
            lines[clear],
            "del /q \"C:\\ProgramData\\vdigw\\epic-hyperspace\\*.ready\" 2>nul"
        );
        assert!(
            clear < marker,
            "old markers go before the new one is written"
        );
    }

    #[test]
    fn debug_hides_keys() {
        let package = build_package("a", &container("player.exe", None)).expect("builds");
        let text = format!("{:?}", package.encryption);
        let key = STANDARD.encode(package.encryption.encryption_key);
        assert!(!text.contains(&key));
        assert!(!text.contains(&hex::encode(package.encryption.encryption_key)));
        assert!(text.contains("REDACTED"));
    }

    #[test]
    fn commit_body_names_the_profile() {
        let package = build_package("a", &container("player.exe", None)).expect("builds");
        let body = package.encryption.commit_body();
        let info = &body["fileEncryptionInfo"];
        assert_eq!(info["profileIdentifier"], "ProfileVersion1");
        assert_eq!(info["fileDigestAlgorithm"], "SHA256");
        let digest = STANDARD
            .decode(info["fileDigest"].as_str().expect("text"))
            .expect("base64");
        assert_eq!(digest, package.encryption.file_digest);
    }
}
