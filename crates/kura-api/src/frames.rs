//! Binary framings for bulk bodies, where JSON would double the size of ids and bytes:
//! lists of fixed 32-byte ids, and sequences of length-prefixed byte strings.

/// Bytes of one id (chunk ids and snapshot ids are BLAKE3 sized).
pub const ID_LEN: usize = 32;

/// A body that does not follow its framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an id list must be a multiple of {ID_LEN} bytes, got {0}")]
    IdListLength(usize),
    #[error("a frame header is cut off at byte {0}")]
    TruncatedHeader(usize),
    #[error("a frame of {len} bytes at byte {at} runs past the end of the body")]
    TruncatedFrame { at: usize, len: usize },
    #[error("expected {expected} frames, got {got}")]
    FrameCount { expected: usize, got: usize },
}

/// Concatenates ids.
pub fn encode_ids<'a>(ids: impl IntoIterator<Item = &'a [u8; ID_LEN]>) -> Vec<u8> {
    let mut out = Vec::new();
    for id in ids {
        out.extend_from_slice(id);
    }
    out
}

/// Splits a body of concatenated ids.
pub fn decode_ids(body: &[u8]) -> Result<Vec<[u8; ID_LEN]>, FrameError> {
    if !body.len().is_multiple_of(ID_LEN) {
        return Err(FrameError::IdListLength(body.len()));
    }
    Ok(body
        .chunks_exact(ID_LEN)
        .map(|c| c.try_into().expect("exact chunk"))
        .collect())
}

/// Each part as a little-endian `u32` length followed by its bytes.
pub fn encode_frames<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        push_frame(&mut out, part);
    }
    out
}

/// Appends one frame to `out`.
pub fn push_frame(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).expect("a frame is smaller than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(part);
}

/// The parts of a framed body, as ranges into it.
pub fn decode_frames(body: &[u8]) -> Result<Vec<std::ops::Range<usize>>, FrameError> {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let header = body.get(at..at + 4).ok_or(FrameError::TruncatedHeader(at))?;
        let len = u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize;
        let start = at + 4;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= body.len())
            .ok_or(FrameError::TruncatedFrame { at, len })?;
        parts.push(start..end);
        at = end;
    }
    Ok(parts)
}

/// Exactly `n` frames.
pub fn decode_n_frames(body: &[u8], n: usize) -> Result<Vec<&[u8]>, FrameError> {
    let ranges = decode_frames(body)?;
    if ranges.len() != n {
        return Err(FrameError::FrameCount {
            expected: n,
            got: ranges.len(),
        });
    }
    Ok(ranges.into_iter().map(|r| &body[r]).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frames_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let body = encode_frames(parts.iter().map(Vec::as_slice));
            let back: Vec<Vec<u8>> = decode_frames(&body).unwrap().into_iter().map(|r| body[r].to_vec()).collect();
            prop_assert_eq!(back, parts);
        }

        #[test]
        fn frames_decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frames(&body);
        }

        #[test]
        fn ids_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..50)) {
            prop_assert_eq!(decode_ids(&encode_ids(ids.iter())).unwrap(), ids);
        }
    }

    #[test]
    fn bad_bodies_are_named() {
        assert_eq!(decode_ids(&[0; 33]), Err(FrameError::IdListLength(33)));
        assert_eq!(decode_frames(&[1, 0]), Err(FrameError::TruncatedHeader(0)));
        assert_eq!(
            decode_frames(&[5, 0, 0, 0, 1]),
            Err(FrameError::TruncatedFrame { at: 0, len: 5 })
        );
        assert_eq!(
            decode_n_frames(&encode_frames([&b"a"[..]]), 2),
            Err(FrameError::FrameCount { expected: 2, got: 1 })
        );
    }
}
