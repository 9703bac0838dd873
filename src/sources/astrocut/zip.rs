//! Reading the zip archives astrocut answers with, safely: sizes are bounded before anything is
//! inflated, member names are only reported (never used as paths), encrypted, split and zip64
//! archives are refused, and each member's length and CRC-32 are checked after inflating.

use std::io::Read;

/// Most members an answer may hold (one per camera and CCD that saw the position).
pub const MAX_MEMBERS: usize = 16;
/// Largest inflated member, and the largest total.
pub const MAX_MEMBER_BYTES: u64 = 1 << 30;
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;

/// The zip magic at the start of a non-empty archive.
pub const MAGIC: &[u8] = b"PK\x03\x04";

/// One member, inflated.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// As written in the archive (for messages and metadata only).
    pub name: String,
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| format!("zip cut short at byte {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("zip cut short at byte {at}"))
}

/// The entries of the central directory: (name, flags, method, crc, compressed, size, local offset).
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: usize,
}

fn central_directory(b: &[u8]) -> Result<Vec<Entry>, String> {
    const EOCD: u32 = 0x0605_4b50;
    // The end record is 22 bytes plus a comment of at most 65535.
    let lowest = b.len().saturating_sub(22 + 0xffff);
    let eocd = (lowest..=b.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(b, i) == Ok(EOCD))
        .ok_or("not a zip archive: no end-of-central-directory record")?;
    let (disk, cd_disk) = (u16_at(b, eocd + 4)?, u16_at(b, eocd + 6)?);
    if disk != 0 || cd_disk != 0 {
        return Err("a split (multi-disk) zip archive".into());
    }
    let count = usize::from(u16_at(b, eocd + 10)?);
    let cd_offset = u32_at(b, eocd + 16)?;
    if count == 0xffff || cd_offset == 0xffff_ffff {
        return Err("a zip64 archive (members too big for a cutout)".into());
    }
    if count > MAX_MEMBERS {
        return Err(format!("a zip of {count} members (at most {MAX_MEMBERS} expected)"));
    }
    let mut at = cd_offset as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(b, at)? != 0x0201_4b50 {
            return Err(format!("zip central directory damaged at byte {at}"));
        }
        let flags = u16_at(b, at + 8)?;
        let method = u16_at(b, at + 10)?;
        let crc = u32_at(b, at + 16)?;
        let compressed = u32_at(b, at + 20)?;
        let size = u32_at(b, at + 24)?;
        let (n, e, c) =
            (usize::from(u16_at(b, at + 28)?), usize::from(u16_at(b, at + 30)?), usize::from(u16_at(b, at + 32)?));
        let offset = u32_at(b, at + 42)?;
        let name_bytes = b.get(at + 46..at + 46 + n).ok_or("zip central directory cut short")?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        if compressed == 0xffff_ffff || size == 0xffff_ffff || offset == 0xffff_ffff {
            return Err(format!("member `{name}` needs zip64"));
        }
        entries.push(Entry {
            name,
            flags,
            method,
            crc,
            compressed: u64::from(compressed),
            size: u64::from(size),
            offset: offset as usize,
        });
        at += 46 + n + e + c;
    }
    Ok(entries)
}

/// The member names of `bytes` from its central directory (nothing inflated); directories are
/// skipped. For listing an archive `members` has already checked.
pub fn names(bytes: &[u8]) -> Result<Vec<String>, String> {
    Ok(central_directory(bytes)?
        .into_iter()
        .filter(|e| !(e.name.ends_with('/') && e.size == 0))
        .map(|e| e.name)
        .collect())
}

/// Every member of `bytes`, inflated and checked; directories are skipped.
pub fn members(bytes: &[u8]) -> Result<Vec<Member>, String> {
    let entries = central_directory(bytes)?;
    let total: u64 = entries.iter().map(|e| e.size).sum();
    if total > MAX_TOTAL_BYTES {
        return Err(format!("the zip's members would inflate to {total} bytes (at most {MAX_TOTAL_BYTES})"));
    }
    let mut out = Vec::new();
    for e in entries {
        if e.name.ends_with('/') && e.size == 0 {
            continue;
        }
        let name = &e.name;
        if e.flags & 1 != 0 {
            return Err(format!("member `{name}` is encrypted"));
        }
        if e.size > MAX_MEMBER_BYTES {
            return Err(format!("member `{name}` would inflate to {} bytes (at most {MAX_MEMBER_BYTES})", e.size));
        }
        if u32_at(bytes, e.offset)? != 0x0403_4b50 {
            return Err(format!("member `{name}`: no local header at byte {}", e.offset));
        }
        let start =
            e.offset + 30 + usize::from(u16_at(bytes, e.offset + 26)?) + usize::from(u16_at(bytes, e.offset + 28)?);
        let raw = bytes
            .get(start..start.saturating_add(e.compressed as usize))
            .ok_or_else(|| format!("member `{name}` is cut short (the zip holds {} bytes)", bytes.len()))?;
        let data = match e.method {
            0 => raw.to_vec(),
            8 => {
                let mut data = Vec::with_capacity(e.size as usize);
                flate2::read::DeflateDecoder::new(raw)
                    .take(e.size + 1)
                    .read_to_end(&mut data)
                    .map_err(|err| format!("member `{name}` does not inflate: {err}"))?;
                data
            }
            m => return Err(format!("member `{name}` uses compression method {m} (only stored and deflate are read)")),
        };
        if data.len() as u64 != e.size {
            return Err(format!("member `{name}` inflates to {} bytes, the directory says {}", data.len(), e.size));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != e.crc {
            return Err(format!("member `{name}` fails its CRC-32 check"));
        }
        out.push(Member { name: e.name, data });
    }
    Ok(out)
}

/// The FITS members of a TESScut answer: at least one, each named `*.fits` and a whole FITS file.
pub fn fits_members(bytes: &[u8]) -> Result<Vec<Member>, String> {
    let members = members(bytes)?;
    if members.is_empty() {
        return Err("the zip holds no file".into());
    }
    for m in &members {
        if !m.name.ends_with(".fits") {
            return Err(format!("member `{}` is not a .fits file", m.name));
        }
        crate::transform::image::check_structure(&m.data).map_err(|e| format!("member `{}`: {}", m.name, e.0))?;
    }
    Ok(members)
}

/// The image members of a Zcut jpg or png answer: at least one, each named for the format and
/// decoding whole as it.
pub fn image_members(bytes: &[u8], format: super::ZcutFormat) -> Result<Vec<Member>, String> {
    let (exts, kind): (&[&str], _) = match format {
        super::ZcutFormat::Jpg => (&[".jpg", ".jpeg"], image::ImageFormat::Jpeg),
        super::ZcutFormat::Png => (&[".png"], image::ImageFormat::Png),
        super::ZcutFormat::Fits => return fits_members(bytes),
    };
    let members = members(bytes)?;
    if members.is_empty() {
        return Err("the zip holds no file".into());
    }
    for m in &members {
        if !exts.iter().any(|e| m.name.to_ascii_lowercase().ends_with(e)) {
            return Err(format!("member `{}` is not a .{} file", m.name, format.name()));
        }
        decode_image(&m.data, kind).map_err(|e| format!("member `{}`: {e}", m.name))?;
    }
    Ok(members)
}

/// A jpg or png member decoded, its size bounded before the pixels are allocated.
pub fn decode_image(data: &[u8], kind: image::ImageFormat) -> Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(data), kind);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_MEMBER_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|e| format!("does not decode as {kind:?}: {e}"))
}

/// Largest side of a jpg/png cutout (Zcut sizes are at most 2000 px).
pub const MAX_IMAGE_SIDE: u32 = 8192;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of `files`, deflated when `deflate`.
    pub(crate) fn build(files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in files {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let body = if deflate {
                let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).unwrap();
                enc.finish().unwrap()
            } else {
                data.to_vec()
            };
            let offset = out.len() as u32;
            let method: u16 = if deflate { 8 } else { 0 };
            let common = |v: &mut Vec<u8>| {
                v.extend_from_slice(&20u16.to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
                v.extend_from_slice(&method.to_le_bytes());
                v.extend_from_slice(&[0; 4]);
                v.extend_from_slice(&crc.sum().to_le_bytes());
                v.extend_from_slice(&(body.len() as u32).to_le_bytes());
                v.extend_from_slice(&(data.len() as u32).to_le_bytes());
                v.extend_from_slice(&(name.len() as u16).to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
            };
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            common(&mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
            cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            cd.extend_from_slice(&20u16.to_le_bytes());
            common(&mut cd);
            cd.extend_from_slice(&[0; 10]);
            cd.extend_from_slice(&offset.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn stored_and_deflated_members_read_back() {
        let a = b"hello hello hello hello".repeat(50);
        for deflate in [false, true] {
            let z = build(&[("a.fits", &a), ("../../b.txt", b"x")], deflate);
            let m = members(&z).unwrap();
            assert_eq!(m[0], Member { name: "a.fits".into(), data: a.clone() });
            assert_eq!(m[1].name, "../../b.txt");
            assert!(fits_members(&z).unwrap_err().contains("a.fits"));
        }
    }

    #[test]
    fn damage_is_named() {
        let z = build(&[("a.fits", b"0123456789")], false);
        let mut bad = z.clone();
        let at = bad.windows(10).position(|w| w == b"0123456789").unwrap();
        bad[at] = b'X';
        assert!(members(&bad).unwrap_err().contains("CRC-32"));
        assert!(members(&z[..z.len() - 30]).unwrap_err().contains("end-of-central-directory"));
        assert!(members(b"{\"msg\": \"x\"}").is_err());
        let empty = build(&[], false);
        assert_eq!(fits_members(&empty).unwrap_err(), "the zip holds no file");
        // A member that claims more than the cap is refused before inflating.
        let mut huge = build(&[("a.fits", b"0123456789")], true);
        let cd = huge.windows(4).rposition(|w| w == 0x0201_4b50u32.to_le_bytes()).unwrap();
        huge[cd + 24..cd + 28].copy_from_slice(&(MAX_MEMBER_BYTES as u32 + 1).to_le_bytes());
        assert!(members(&huge).unwrap_err().contains("would inflate"), "{}", members(&huge).unwrap_err());
    }
}
