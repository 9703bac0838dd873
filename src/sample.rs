//! What a source makes for each sample: its fields, or why it could not be made.

/// A sample's fields as (name, bytes), sorted by name: the member order inside a shard.
pub type Fields = Vec<(String, Vec<u8>)>;

/// Why one sample could not be made; it goes to `failures.jsonl` and the run ends with exit 3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SampleError(pub String);

/// Meaning of each field etd can write, for the manifest's `fields`.
pub fn field_meaning(field: &str) -> String {
    match field {
        "npy" => "numpy array: image float32 (C,H,W) or (H,W), or a light curve as a structured array",
        "fluxerr.npy" => "numpy float32 (T,H,W): 1-sigma errors of the TESS flux cube",
        "bkg.npy" => "numpy float32 (T,H,W): background subtracted from the TESS flux cube",
        "time.npy" => "numpy float64 (T,): mid-cadence times, BTJD (BJD - 2457000)",
        "cadence.npy" => "numpy int32 (T,): cadence numbers",
        "quality.npy" => "numpy int32 (T,): quality flags per cadence (0 = good)",
        "aperture.npy" => "numpy int32 (H,W): the target-pixel file's APERTURE image",
        "wht.npy" => {
            "numpy float32 (H,W): the WHT image (drizzle weight, inverse variance) beside the SCI image in npy"
        }
        "json" => "metadata: id, source inputs and sha256, header keywords (WCS, EXPTIME, MJD-OBS, filter, zero point)",
        "cls" => "integer class index as ASCII digits (into the manifest's classes)",
        "fits" => "original FITS bytes",
        "png" => "8-bit preview image (zscale, north up)",
        "txt" => "original text file",
        "csv" => "original CSV file",
        other => return format!("original .{other} file"),
    }
    .to_string()
}
