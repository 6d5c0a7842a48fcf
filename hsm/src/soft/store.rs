//! The key directory: passphrase-encrypted PKCS#8 files written atomically and without
//! overwriting, read back with their permissions checked (see the module docs of
//! [`super`]).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use der::pem::{LineEnding, PemLabel};
use der::{Decode, SecretDocument};
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use super::key::{SoftKey, generate_pkcs8};
use super::{KEY_SUFFIX, MAX_KEY_FILE_LEN, PBKDF2_ITERATIONS, io_err, validate_label};
use crate::{Error, KeyAlgorithm, KeyInfo, KeyStore, PrivateKey, Result, Secret};

/// A directory of passphrase-encrypted PKCS#8 key files (see the [module docs](super)).
pub struct SoftKeyStore {
    dir: PathBuf,
    passphrase: Secret,
}

impl fmt::Debug for SoftKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftKeyStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SoftKeyStore {
    /// Opens the key directory `dir`, creating it (and missing parents) with mode 0700 if it
    /// does not exist. Every key in the store is encrypted under `passphrase`.
    ///
    /// Fails with [`Error::Secret`] for an empty passphrase and [`Error::Io`] when the
    /// directory cannot be created or is not a directory. A directory that group or others
    /// can write to is accepted but logged as a warning.
    pub fn open(dir: impl Into<PathBuf>, passphrase: Secret) -> Result<Self> {
        let dir = dir.into();
        if passphrase.expose().is_empty() {
            return Err(Error::Secret(
                "the key store passphrase is empty".to_owned(),
            ));
        }
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(format!("creating key directory {}", dir.display())))?;
        }
        let meta = fs::metadata(&dir)
            .map_err(io_err(format!("reading key directory {}", dir.display())))?;
        if !meta.is_dir() {
            return Err(Error::Io {
                context: format!("opening key directory {}", dir.display()),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        if meta.permissions().mode() & 0o022 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o7777),
                "key directory is writable by group or others"
            );
        }
        Ok(SoftKeyStore { dir, passphrase })
    }

    /// The directory the keys live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the file that holds (or would hold) the key `label`.
    pub fn key_path(&self, label: &str) -> Result<PathBuf> {
        validate_label(label)?;
        Ok(self.dir.join(format!("{label}{KEY_SUFFIX}")))
    }

    /// Generates a key and returns it as its concrete type (the trait method
    /// [`KeyStore::generate`] wraps this).
    pub fn generate_key(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<SoftKey>> {
        let path = self.key_path(label)?;
        if path.exists() {
            return Err(Error::Exists(label.to_owned()));
        }
        let pkcs8 = generate_pkcs8(algorithm)?;
        let key = SoftKey::from_pkcs8(label, &pkcs8)?;
        if key.algorithm != algorithm {
            // Cannot happen with aws-lc-rs, but a wrong key must never be stored silently.
            return Err(Error::Crypto(format!(
                "generated a {} key when {algorithm} was asked for",
                key.algorithm
            )));
        }
        self.store(label, &path, &pkcs8)?;
        tracing::info!(label, %algorithm, "generated software key");
        Ok(Arc::new(key))
    }

    /// Imports an unencrypted PKCS#8 key and returns it as its concrete type (the trait method
    /// [`KeyStore::import_pkcs8`] wraps this).
    pub fn import_key(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<SoftKey>> {
        let path = self.key_path(label)?;
        if path.exists() {
            return Err(Error::Exists(label.to_owned()));
        }
        let key = SoftKey::from_pkcs8(label, pkcs8_der)?;
        self.store(label, &path, pkcs8_der)?;
        tracing::info!(label, algorithm = %key.algorithm, "imported software key");
        Ok(Arc::new(key))
    }

    /// Opens a stored key and returns it as its concrete type (the trait method
    /// [`KeyStore::open`] wraps this).
    pub fn open_key(&self, label: &str) -> Result<Arc<SoftKey>> {
        let path = self.key_path(label)?;
        let pkcs8 = self.read_key_file(label, &path)?;
        SoftKey::from_pkcs8(label, pkcs8.as_bytes()).map(Arc::new)
    }

    /// Reads, checks and decrypts a key file, returning the plaintext PKCS#8 DER.
    fn read_key_file(&self, label: &str, path: &Path) -> Result<SecretDocument> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(label.to_owned()));
            }
            Err(e) => return Err(io_err(format!("opening key file {}", path.display()))(e)),
        };
        // Check the file we actually opened (fstat), not the path, so that the file cannot be
        // swapped between the check and the read.
        let meta = file
            .metadata()
            .map_err(io_err(format!("reading key file {}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::BadKey(format!(
                "key file {} is not a regular file",
                path.display()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecurePermissions {
                path: path.display().to_string(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(Error::BadKey(format!(
                "key file {} is {} bytes; that is not a key file",
                path.display(),
                meta.len()
            )));
        }
        let mut pem = String::new();
        io::Read::read_to_string(&mut file, &mut pem)
            .map_err(io_err(format!("reading key file {}", path.display())))?;

        let (pem_label, doc) = der::Document::from_pem(&pem)
            .map_err(|e| Error::BadKey(format!("key file {} is not PEM: {e}", path.display())))?;
        if pem_label != EncryptedPrivateKeyInfoRef::PEM_LABEL {
            return Err(Error::BadKey(format!(
                "key file {} holds a {pem_label:?} PEM block; expected {:?}",
                path.display(),
                EncryptedPrivateKeyInfoRef::PEM_LABEL
            )));
        }
        let epki = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).map_err(|e| {
            Error::BadKey(format!(
                "key file {} is not an encrypted PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        // A wrong passphrase shows up as bad CBC padding, or (1 time in 256) as plaintext that
        // does not decode. Both mean the same thing to the operator.
        epki.decrypt(self.passphrase.expose()).map_err(|_| {
            Error::BadKey(format!(
                "cannot decrypt key file {}: wrong passphrase or corrupt file",
                path.display()
            ))
        })
    }

    /// Encrypts `pkcs8` and writes it to `path` atomically and without overwriting.
    fn store(&self, label: &str, path: &Path, pkcs8: &[u8]) -> Result<()> {
        let pem = encrypt_pkcs8(pkcs8, self.passphrase.expose())?;

        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Crypto("random number generator failed".to_owned()))?;
        // The leading dot keeps temporary files out of `list` and makes their names invalid
        // labels, so they can never be mistaken for keys.
        let tmp_path = self
            .dir
            .join(format!(".{label}.key.tmp-{}", hex::encode(nonce)));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(io_err(format!("creating {}", tmp_path.display())))?;
        // From here on the temporary name is ours; remove it on every path out.
        let tmp = TempFile(tmp_path);
        // The mode given to open() is filtered by the umask; 0600 only ever loses bits, but set
        // it explicitly so the result does not depend on the umask.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("setting mode of {}", tmp.0.display())))?;
        file.write_all(pem.as_bytes())
            .map_err(io_err(format!("writing {}", tmp.0.display())))?;
        file.sync_all()
            .map_err(io_err(format!("syncing {}", tmp.0.display())))?;
        drop(file);

        // link(2) fails if the target exists: creation is atomic and never clobbers a key.
        match fs::hard_link(&tmp.0, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(label.to_owned()));
            }
            Err(e) => return Err(io_err(format!("creating key file {}", path.display()))(e)),
        }
        drop(tmp); // unlinks the temporary name
        sync_dir(&self.dir)
    }
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove temporary key file");
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing directory {}", dir.display())))
}

/// Encrypts a plaintext PKCS#8 DER document into an `ENCRYPTED PRIVATE KEY` PEM string.
fn encrypt_pkcs8(pkcs8: &[u8], passphrase: &[u8]) -> Result<Zeroizing<String>> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .and_then(|()| aws_lc_rs::rand::fill(&mut iv))
        .map_err(|_| Error::Crypto("random number generator failed".to_owned()))?;
    let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, iv)
        .map_err(|e| Error::Crypto(format!("PBES2 parameters: {e}")))?;
    let pki = PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| Error::BadKey(format!("not a PKCS#8 PrivateKeyInfo: {e}")))?;
    let encrypted = pki
        .encrypt_with_params(params, passphrase)
        .map_err(|e| Error::Crypto(format!("encrypting key: {e}")))?;
    encrypted
        .to_pem(EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
        .map_err(|e| Error::Crypto(format!("PEM encoding: {e}")))
}

impl KeyStore for SoftKeyStore {
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.generate_key(label, algorithm)?)
    }

    fn import_pkcs8(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.import_key(label, pkcs8_der)?)
    }

    fn open(&self, label: &str) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.open_key(label)?)
    }

    /// Lists every `<label>.key` file, sorted by label. Each key is decrypted to learn its
    /// public key, so a key that cannot be opened fails the whole listing (a CA should not
    /// quietly ignore a damaged key). Files whose names are not valid labels are skipped
    /// with a warning.
    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = fs::read_dir(&self.dir).map_err(io_err(format!(
            "listing key directory {}",
            self.dir.display()
        )))?;
        let mut labels = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!(
                "listing key directory {}",
                self.dir.display()
            )))?;
            let name = entry.file_name();
            let Some(label) = name.to_str().and_then(|n| n.strip_suffix(KEY_SUFFIX)) else {
                continue;
            };
            if validate_label(label).is_err() {
                if !label.starts_with('.') {
                    tracing::warn!(file = ?name, "ignoring key file with an invalid label");
                }
                continue;
            }
            labels.push(label.to_owned());
        }
        labels.sort();
        labels
            .into_iter()
            .map(|label| {
                let key = self.open_key(&label)?;
                Ok(KeyInfo {
                    label,
                    algorithm: key.algorithm,
                    public_key_der: key.spki.clone(),
                })
            })
            .collect()
    }
}
