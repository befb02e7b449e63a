//! The function's deployment package: a zip holding `bootstrap` (mode 0755)
//! and `tenant.toml`, byte-for-byte reproducible (fixed order, fixed
//! 1980-01-01 timestamps, no extra fields, no comments), so its base64
//! SHA-256 equals Lambda's `CodeSha256` exactly when nothing changed and
//! the code is not uploaded again.
//!
//! Written by hand: the format needs three small records, and owning every
//! byte is what makes it reproducible. `bootstrap` is deflated once per run
//! and comes first, so the SHA-256 state after it is shared by every
//! tenant's zip: hashing a tenant's package costs its tenant file only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use runtime::Tenant;
use sha2::{Digest, Sha256};

use crate::desired::Code;

/// MS-DOS date of 1980-01-01 (the format's epoch); the time is 00:00:00.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// "Made by" Unix (3), format version 2.0: the external attributes then
/// carry the Unix mode, which Lambda honours for `bootstrap`.
const MADE_BY: u16 = (3 << 8) | 20;
const NEEDED: u16 = 20;
const DEFLATE: u16 = 8;
const EXECUTABLE: u32 = 0o100755;
const REGULAR: u32 = 0o100644;

/// One compressed entry.
#[derive(Debug, Clone)]
struct Entry {
    name: &'static str,
    mode: u32,
    crc: u32,
    size: u32,
    data: Vec<u8>,
}

impl Entry {
    fn new(name: &'static str, mode: u32, content: &[u8]) -> anyhow::Result<Entry> {
        let size = u32::try_from(content.len())
            .map_err(|_| anyhow::anyhow!("{name} is larger than a zip without zip64 holds"))?;
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(content)?;
        let data = encoder.finish()?;
        u32::try_from(data.len())
            .map_err(|_| anyhow::anyhow!("{name} compresses to more than 4 GiB"))?;
        Ok(Entry {
            name,
            mode,
            crc: crc32fast::hash(content),
            size,
            data,
        })
    }

    fn local_header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(30 + self.name.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&NEEDED.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&DEFLATE.to_le_bytes());
        h.extend_from_slice(&DOS_TIME.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&self.crc.to_le_bytes());
        h.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        h.extend_from_slice(&self.size.to_le_bytes());
        h.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        h.extend_from_slice(self.name.as_bytes());
        h
    }

    fn central_header(&self, offset: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(46 + self.name.len());
        h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        h.extend_from_slice(&MADE_BY.to_le_bytes());
        h.extend_from_slice(&NEEDED.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&DEFLATE.to_le_bytes());
        h.extend_from_slice(&DOS_TIME.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&self.crc.to_le_bytes());
        h.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        h.extend_from_slice(&self.size.to_le_bytes());
        h.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        h.extend_from_slice(&0u16.to_le_bytes()); // comment length
        h.extend_from_slice(&0u16.to_le_bytes()); // disk number
        h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        h.extend_from_slice(&(self.mode << 16).to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        h
    }

    fn len(&self) -> usize {
        30 + self.name.len() + self.data.len()
    }
}

/// The CPU architecture of an artifact, as Lambda names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// Reads it from an ELF executable's header.
    pub fn of(executable: &[u8]) -> anyhow::Result<Architecture> {
        use object::Object;
        let file = object::File::parse(executable)
            .map_err(|e| anyhow::anyhow!("not an executable Lambda can run: {e}"))?;
        match file.architecture() {
            object::Architecture::X86_64 => Ok(Architecture::X86_64),
            object::Architecture::Aarch64 => Ok(Architecture::Arm64),
            other => anyhow::bail!("an executable for {other:?}; Lambda runs x86_64 and arm64"),
        }
    }
}

/// The `bootstrap` of a run, compressed once, and the SHA-256 state after
/// it (every tenant's zip starts with the same bytes).
#[derive(Clone)]
pub struct Package {
    bootstrap: Arc<Entry>,
    prefix: Sha256,
    pub architecture: Architecture,
    pub path: PathBuf,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("path", &self.path)
            .field("architecture", &self.architecture)
            .field("bootstrap_compressed", &self.bootstrap.data.len())
            .finish()
    }
}

impl Package {
    /// Reads and compresses the `bootstrap` executable, refusing one that
    /// would not start on Lambda's Amazon Linux 2023.
    pub fn from_artifact(path: &Path) -> anyhow::Result<Package> {
        crate::artifact::check_runs_on_lambda(path)?;
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading the artifact {}: {e}", path.display()))?;
        let architecture =
            Architecture::of(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Package::new(&bytes, architecture, path)
    }

    pub fn new(bootstrap: &[u8], architecture: Architecture, path: &Path) -> anyhow::Result<Self> {
        let entry = Entry::new("bootstrap", EXECUTABLE, bootstrap)?;
        let mut prefix = Sha256::new();
        prefix.update(entry.local_header());
        prefix.update(&entry.data);
        Ok(Package {
            bootstrap: Arc::new(entry),
            prefix,
            architecture,
            path: path.to_owned(),
        })
    }

    /// The bytes after `bootstrap`'s entry: the tenant file's entry, the
    /// central directory and its end record.
    fn tail(&self, source: &str) -> anyhow::Result<Vec<u8>> {
        let tenant = Entry::new("tenant.toml", REGULAR, source.as_bytes())?;
        let first = &self.bootstrap;
        let second_offset = u32::try_from(first.len())
            .map_err(|_| anyhow::anyhow!("the package is larger than 4 GiB"))?;
        let mut out = tenant.local_header();
        out.extend_from_slice(&tenant.data);
        let directory_offset = u32::try_from(first.len() + tenant.len())
            .map_err(|_| anyhow::anyhow!("the package is larger than 4 GiB"))?;
        let mut directory = first.central_header(0);
        directory.extend_from_slice(&tenant.central_header(second_offset));
        out.extend_from_slice(&directory);
        // End of central directory: no disks, two entries, no comment.
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&directory_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        Ok(out)
    }

    /// The whole zip of a tenant.
    pub fn zip(&self, source: &str) -> anyhow::Result<Vec<u8>> {
        let tail = self.tail(source)?;
        let first = &self.bootstrap;
        let mut out = Vec::with_capacity(first.len() + tail.len());
        out.extend_from_slice(&first.local_header());
        out.extend_from_slice(&first.data);
        out.extend_from_slice(&tail);
        Ok(out)
    }

    /// Base64 SHA-256 of the tenant's zip, as Lambda reports `CodeSha256`.
    pub fn sha256(&self, source: &str) -> anyhow::Result<String> {
        let mut hash = self.prefix.clone();
        hash.update(self.tail(source)?);
        Ok(STANDARD.encode(hash.finalize()))
    }
}

impl Code for Package {
    fn sha256(&self, _: &Tenant, source: &str) -> String {
        // A tenant file over 4 GiB cannot be valid; the hash then names the
        // failure and the apply of the function reports it.
        Package::sha256(self, source).unwrap_or_else(|e| format!("unpackageable: {e}"))
    }
}

/// Base64 SHA-256 of any bytes (Lambda's `CodeSha256` of an upload).
pub fn code_sha256(bytes: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(bootstrap: &[u8]) -> Package {
        Package::new(bootstrap, Architecture::X86_64, Path::new("bootstrap")).unwrap()
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_hash() {
        let bin: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let a = package(&bin).zip("[tenant]\n").unwrap();
        let b = package(&bin).zip("[tenant]\n").unwrap();
        assert_eq!(a, b);
        let p = package(&bin);
        assert_eq!(p.sha256("[tenant]\n").unwrap(), code_sha256(&a));
        // Either input changes the hash.
        assert_ne!(p.sha256("[tenant]\n#").unwrap(), code_sha256(&a));
        let mut other = bin.clone();
        other[7] ^= 1;
        assert_ne!(
            package(&other).sha256("[tenant]\n").unwrap(),
            code_sha256(&a)
        );
    }

    #[test]
    fn the_zip_reads_back_with_modes_and_fixed_times() {
        let bin = b"\x7fELF pretend executable".repeat(100);
        let zip = package(&bin)
            .zip("[tenant]\ndisplay_name = \"x\"\n")
            .unwrap();
        // Central directory: two entries, bootstrap first.
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([zip[eocd + 10], zip[eocd + 11]]), 2);
        let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        let name_len = u16::from_le_bytes([zip[cd + 28], zip[cd + 29]]) as usize;
        assert_eq!(&zip[cd + 46..cd + 46 + name_len], b"bootstrap");
        let attrs = u32::from_le_bytes(zip[cd + 38..cd + 42].try_into().unwrap());
        assert_eq!(attrs >> 16, 0o100755);
        assert_eq!(u16::from_le_bytes([zip[cd + 14], zip[cd + 15]]), DOS_DATE);
        // The entry inflates back to the input.
        let csize = u32::from_le_bytes(zip[18..22].try_into().unwrap()) as usize;
        let data = &zip[30 + 9..30 + 9 + csize];
        let mut out = Vec::new();
        std::io::copy(&mut flate2::read::DeflateDecoder::new(data), &mut out).unwrap();
        assert_eq!(out, bin);
        assert_eq!(
            crc32fast::hash(&bin),
            u32::from_le_bytes(zip[14..18].try_into().unwrap())
        );
    }

    #[test]
    fn the_architecture_comes_from_the_elf_header() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(Architecture::of(&me).unwrap(), Architecture::X86_64);
        assert!(Architecture::of(b"#!/bin/sh\n").is_err());
    }
}
