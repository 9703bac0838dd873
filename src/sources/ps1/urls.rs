//! Request URLs for the PS1 image service (docs/archives.md 1.3, 1.4): `ps1filenames.py` to list the
//! images covering a position and `fitscut.cgi` to cut them out.

use super::table::Ps1Image;
use super::{CutoutFormat, ImageType, Ps1Config};

/// `GET {base}/cgi-bin/ps1filenames.py?ra=..&dec=..&filters=..&type=..`
pub fn filenames_url(cfg: &Ps1Config, ra: f64, dec: f64) -> url::Url {
    let mut url = cfg.base_url.clone();
    url.set_path(&format!("{}/cgi-bin/ps1filenames.py", cfg.base_url.path().trim_end_matches('/')));
    let filters: String = cfg.filters.iter().collect();
    let kind = match cfg.image_type {
        ImageType::Stack => "stack",
        ImageType::Warp => "warp",
    };
    url.query_pairs_mut()
        .append_pair("ra", &ra.to_string())
        .append_pair("dec", &dec.to_string())
        .append_pair("filters", &filters)
        .append_pair("type", kind);
    url
}

/// `GET {base}/cgi-bin/fitscut.cgi?red=..[&green=..&blue=..]&ra=..&dec=..&size=..&format=..`.
/// One image gives a monochrome cutout; three (red, green, blue) a colour jpg/png.
pub fn fitscut_url(cfg: &Ps1Config, ra: f64, dec: f64, images: &[&Ps1Image]) -> url::Url {
    let mut url = cfg.base_url.clone();
    url.set_path(&format!("{}/cgi-bin/fitscut.cgi", cfg.base_url.path().trim_end_matches('/')));
    let format = match cfg.format {
        CutoutFormat::Fits => "fits",
        CutoutFormat::Jpg => "jpg",
        CutoutFormat::Png => "png",
    };
    {
        let mut q = url.query_pairs_mut();
        for (name, image) in ["red", "green", "blue"].iter().zip(images) {
            q.append_pair(name, &image.filename);
        }
        q.append_pair("ra", &ra.to_string())
            .append_pair("dec", &dec.to_string())
            .append_pair("size", &cfg.size.to_string())
            .append_pair("format", format);
    }
    url
}

/// Room for headers and metadata in every body bound: a FITS header of 22 blocks, a JPEG's or
/// PNG's chunks, a table's header line.
const HEAD_ROOM: u64 = 64 << 10;

/// The largest `ps1filenames.py` answer the request can need: the header and up to 4096 rows
/// (of at most 256 bytes) per filter asked for. A stack position has one row per filter; warps
/// a few hundred.
pub fn table_max_body(cfg: &Ps1Config) -> u64 {
    HEAD_ROOM + cfg.filters.len() as u64 * 4096 * 256
}

/// The largest `fitscut.cgi` answer a cutout can need: `size` x `size` pixels of at most 8 bytes
/// (a 64-bit FITS image; a colour png's 4 channels of 8 bits, with room to spare for the
/// encoder) plus [`HEAD_ROOM`]. A 240-pixel cutout: 524,288 bytes.
pub fn cutout_max_body(cfg: &Ps1Config) -> u64 {
    HEAD_ROOM + u64::from(cfg.size) * u64::from(cfg.size) * 8
}

/// Three filters for a colour image, reddest first, as MAST's own examples order them
/// (`"yzirg".find`).
pub fn colour_order(filters: &[char]) -> Vec<char> {
    let mut sorted = filters.to_vec();
    sorted.sort_by_key(|f| "yzirg".find(*f).unwrap_or(usize::MAX));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(format: CutoutFormat, filters: &[char]) -> Ps1Config {
        Ps1Config {
            base_url: url::Url::parse("http://127.0.0.1:8080").unwrap(),
            filters: filters.to_vec(),
            size: 120,
            image_type: ImageType::Stack,
            format,
        }
    }

    fn image(filter: char) -> Ps1Image {
        let short = format!("rings.v3.skycell.1268.000.stk.{filter}.unconv.fits");
        Ps1Image {
            projcell: 1268,
            subcell: 0,
            ra: 144.0,
            dec: -2.0,
            filter,
            mjd: 0.0,
            image_type: "stack".into(),
            filename: format!("/rings.v3.skycell/1268/000/{short}"),
            shortname: short,
            badflag: Some(0),
        }
    }

    #[test]
    fn body_bounds_follow_the_request() {
        let c = cfg(CutoutFormat::Fits, &['g', 'r']);
        assert_eq!(cutout_max_body(&c), 65536 + 120 * 120 * 8);
        assert_eq!(table_max_body(&c), 65536 + 2 * 4096 * 256);
        // The fixture cutout (240 pixels, BITPIX -32) is well inside its bound.
        assert!(cutout_max_body(&Ps1Config { size: 240, ..c }) > 240 * 240 * 4 + 2880 * 2);
    }

    #[test]
    fn filenames_and_fitscut_urls() {
        let c = cfg(CutoutFormat::Fits, &['g', 'r']);
        assert_eq!(
            filenames_url(&c, 144.0, -2.5).as_str(),
            "http://127.0.0.1:8080/cgi-bin/ps1filenames.py?ra=144&dec=-2.5&filters=gr&type=stack"
        );
        let r = image('r');
        assert_eq!(
            fitscut_url(&c, 144.0, -2.5, &[&r]).as_str(),
            "http://127.0.0.1:8080/cgi-bin/fitscut.cgi?red=%2Frings.v3.skycell%2F1268%2F000%2Frings.v3.skycell.1268.000.stk.r.unconv.fits&ra=144&dec=-2.5&size=120&format=fits"
        );
    }

    #[test]
    fn colour_cutouts_go_red_to_blue() {
        assert_eq!(colour_order(&['g', 'i', 'r']), vec!['i', 'r', 'g']);
        let c = cfg(CutoutFormat::Jpg, &['g', 'r', 'i']);
        let (i, r, g) = (image('i'), image('r'), image('g'));
        let url = fitscut_url(&c, 1.0, 2.0, &[&i, &r, &g]);
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(pairs[0].0, "red");
        assert!(pairs[0].1.contains(".stk.i."));
        assert!(pairs[2].1.contains(".stk.g."));
        assert_eq!(pairs.last().unwrap(), &("format".to_string(), "jpg".to_string()));
    }
}
