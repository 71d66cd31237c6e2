//! A PNG encoder for the charts' RGB pixels: the signature, a header, the rows
//! deflated (flate2, already in the build through the MySQL driver) and an end chunk.
//! Ours because plotters' own encoder brings the `image` crate and a second version of
//! the deflate crates into the build for the same few lines.

use flate2::Compression;
use flate2::write::ZlibEncoder;
use std::io::Write;

pub const SIGNATURE: [u8; 8] = *b"\x89PNG\r\n\x1a\n";

/// The PNG of `width` × `height` pixels given as RGB triples, row by row.
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> anyhow::Result<Vec<u8>> {
    let row = width as usize * 3;
    anyhow::ensure!(
        rgb.len() == row * height as usize && width > 0 && height > 0,
        "{} bytes are not {width} × {height} RGB pixels",
        rgb.len()
    );
    // Each row starts with its filter type: 0, none (charts are mostly flat colour,
    // which deflates well as it is).
    let mut deflate = ZlibEncoder::new(Vec::new(), Compression::default());
    for pixels in rgb.chunks(row) {
        deflate.write_all(&[0])?;
        deflate.write_all(pixels)?;
    }
    let data = deflate.finish()?;

    let mut header = Vec::with_capacity(13);
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    // 8 bits a sample, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend([8, 2, 0, 0, 0]);

    let mut png = SIGNATURE.to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &data);
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

/// Length, type, data, and the CRC-32 of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    png.extend(kind);
    png.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend(crc.sum().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    #[test]
    fn a_png_has_its_header_its_rows_and_its_end() {
        // 2 × 2: red, green / blue, white.
        let rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let png = encode_rgb(2, 2, &rgb).unwrap();
        assert_eq!(png[..8], SIGNATURE);
        assert_eq!(&png[8..16], b"\0\0\0\x0dIHDR");
        assert_eq!(&png[16..29], [0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
        // The end chunk, whose CRC every PNG shares.
        assert_eq!(&png[png.len() - 12..], b"\0\0\0\0IEND\xae\x42\x60\x82");

        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut rows = Vec::new();
        ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut rows)
            .unwrap();
        assert_eq!(rows, [&[0][..], &rgb[..6], &[0], &rgb[6..]].concat());
    }

    #[test]
    fn pixels_that_do_not_fill_the_picture_are_refused() {
        assert!(encode_rgb(2, 2, &[0; 11]).is_err());
        assert!(encode_rgb(0, 0, &[]).is_err());
    }
}
