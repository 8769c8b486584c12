//! A minimal reader of ZIP archives, enough for NumPy's `.npz` files.
//!
//! Supports stored and deflated members, ZIP64 sizes and offsets (NumPy writes every
//! member with ZIP64 headers), and checks each member's CRC-32. Sizes come from the
//! central directory; every offset is bounds-checked against the file before use, so a
//! corrupt archive gives an error, never a panic or a huge allocation.

use std::io::Read;
use std::path::Path;

use super::error::{DataError, file_label};

struct Member {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// An archive read whole into memory with its directory parsed.
pub struct ZipArchive {
    file: String,
    bytes: Vec<u8>,
    members: Vec<Member>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl ZipArchive {
    pub fn open(path: &Path) -> Result<ZipArchive, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        ZipArchive::parse(&file_label(path), bytes)
    }

    pub fn parse(file: &str, bytes: Vec<u8>) -> Result<ZipArchive, DataError> {
        let members = directory(&bytes).ok_or_else(|| {
            DataError::invalid(file, "not a readable zip archive (no valid central directory)")
        })?;
        Ok(ZipArchive { file: file.to_string(), bytes, members })
    }

    pub fn names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.name.as_str()).collect()
    }

    /// The contents of a member, `None` if the archive has no such member.
    pub fn read(&self, name: &str) -> Option<Result<Vec<u8>, DataError>> {
        let member = self.members.iter().find(|m| m.name == name)?;
        Some(self.extract(member))
    }

    fn extract(&self, m: &Member) -> Result<Vec<u8>, DataError> {
        let label = format!("{}:{}", self.file, m.name);
        let bad = |what: &str| DataError::invalid(&label, what.to_string());
        let local = usize::try_from(m.local_offset).map_err(|_| bad("member offset out of range"))?;
        if u32_at(&self.bytes, local) != Some(0x0403_4b50) {
            return Err(bad("no local header where the directory says"));
        }
        let name_len = u16_at(&self.bytes, local + 26).ok_or_else(|| bad("truncated local header"))? as usize;
        let extra_len =
            u16_at(&self.bytes, local + 28).ok_or_else(|| bad("truncated local header"))? as usize;
        let start = local + 30 + name_len + extra_len;
        let end = usize::try_from(m.compressed).ok().and_then(|c| start.checked_add(c));
        let raw = end.and_then(|end| self.bytes.get(start..end)).ok_or_else(|| DataError::Truncated {
            file: label.clone(),
            detail: format!("member data of {} bytes runs past the end of the archive", m.compressed),
        })?;
        let data = match m.method {
            0 => raw.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .take(m.size.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| DataError::Gzip { file: label.clone(), detail: e.to_string() })?;
                out
            }
            other => {
                return Err(bad(&format!(
                    "compression method {other} is not supported (only stored and deflate)"
                )));
            }
        };
        if data.len() as u64 != m.size {
            return Err(bad(&format!("member holds {} bytes, the directory says {}", data.len(), m.size)));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != m.crc {
            return Err(bad(&format!(
                "CRC-32 0x{:08x} does not match the stored 0x{:08x}",
                crc.sum(),
                m.crc
            )));
        }
        Ok(data)
    }
}

/// Parses the central directory, following the ZIP64 records where the classic fields
/// are saturated.
fn directory(b: &[u8]) -> Option<Vec<Member>> {
    // The end record is 22 bytes plus a comment of at most 65535 bytes.
    let lowest = b.len().saturating_sub(22 + 65535);
    let eocd = (lowest..=b.len().checked_sub(22)?).rev().find(|&i| u32_at(b, i) == Some(0x0605_4b50))?;
    let mut count = u16_at(b, eocd + 10)? as u64;
    let mut offset = u32_at(b, eocd + 16)? as u64;
    if count == 0xFFFF || offset == 0xFFFF_FFFF {
        let locator = eocd.checked_sub(20)?;
        if u32_at(b, locator)? != 0x0706_4b50 {
            return None;
        }
        let record = usize::try_from(u64_at(b, locator + 8)?).ok()?;
        if u32_at(b, record)? != 0x0606_4b50 {
            return None;
        }
        count = u64_at(b, record + 32)?;
        offset = u64_at(b, record + 48)?;
    }
    let mut at = usize::try_from(offset).ok()?;
    let mut members = Vec::new();
    for _ in 0..count {
        if u32_at(b, at)? != 0x0201_4b50 {
            return None;
        }
        let name_len = u16_at(b, at + 28)? as usize;
        let extra_len = u16_at(b, at + 30)? as usize;
        let comment_len = u16_at(b, at + 32)? as usize;
        let name = String::from_utf8_lossy(b.get(at + 46..at + 46 + name_len)?).into_owned();
        let mut m = Member {
            name,
            method: u16_at(b, at + 10)?,
            crc: u32_at(b, at + 16)?,
            compressed: u32_at(b, at + 20)? as u64,
            size: u32_at(b, at + 24)? as u64,
            local_offset: u32_at(b, at + 42)? as u64,
        };
        let extra = b.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
        apply_zip64(&mut m, extra)?;
        members.push(m);
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(members)
}

/// Replaces saturated sizes and offsets by the values of the ZIP64 extra field, which
/// holds, in this order, exactly those of size, compressed size and offset that are saturated.
fn apply_zip64(m: &mut Member, mut extra: &[u8]) -> Option<()> {
    while extra.len() >= 4 {
        let id = u16_at(extra, 0)?;
        let len = u16_at(extra, 2)? as usize;
        let body = extra.get(4..4 + len)?;
        if id == 0x0001 {
            let mut at = 0;
            for field in [&mut m.size, &mut m.compressed, &mut m.local_offset] {
                if *field == 0xFFFF_FFFF {
                    *field = u64_at(body, at)?;
                    at += 8;
                }
            }
        }
        extra = &extra[4 + len..];
    }
    Some(())
}
