//! A path inside a snapshot, byte for byte. File names on Linux are bytes: most are
//! UTF-8, but a tree copied from an old Samba share may hold Shift_JIS or Latin-1 names.
//! Such a path is given and answered as text where it is UTF-8, and as hex (`path_hex`)
//! where it is not, so that every entry a listing shows can be opened and downloaded.

use crate::{ServiceError, ServiceResult};

/// The path of an entry in a snapshot: `/` is its root; in an image snapshot `/N/...`
/// is on partition N.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SnapshotPath(Vec<u8>);

impl SnapshotPath {
    /// The root of the snapshot.
    pub fn root() -> Self {
        SnapshotPath(b"/".to_vec())
    }

    /// The path a request names: as text (`path`), or as the hex of its bytes
    /// (`path_hex`) when it is not UTF-8. Neither is the root; both is refused.
    pub fn from_request(text: Option<&str>, hex: Option<&str>) -> ServiceResult<Self> {
        match (text.filter(|t| !t.is_empty()), hex.filter(|h| !h.is_empty())) {
            (Some(_), Some(_)) => Err(ServiceError::invalid(
                "give either path or path_hex, not both: path_hex is for names that are not UTF-8",
            )),
            (Some(text), None) => Ok(SnapshotPath(text.as_bytes().to_vec())),
            (None, Some(hex)) => hex::decode(hex).map(SnapshotPath).map_err(|_| {
                ServiceError::invalid("path_hex is not hexadecimal: pass path_hex as a listing gave it")
            }),
            (None, None) => Ok(Self::root()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path for display and for `path`, with bytes that are not UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The hex of the path for `path_hex`, when its text alone would not name it.
    pub fn hex(&self) -> Option<String> {
        std::str::from_utf8(&self.0)
            .is_err()
            .then(|| hex::encode(&self.0))
    }

    /// The path of `name` in this directory.
    pub fn join(&self, name: &[u8]) -> Self {
        let mut path = self.0.clone();
        if path.last() != Some(&b'/') {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        SnapshotPath(path)
    }

    /// `/a/b` from the names of its parts.
    pub(super) fn of_names(names: &[Vec<u8>]) -> Self {
        if names.is_empty() {
            return Self::root();
        }
        let mut path = Vec::new();
        for name in names {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        SnapshotPath(path)
    }
}

impl std::fmt::Debug for SnapshotPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_goes_both_ways_as_hex() {
        let dir = SnapshotPath::from_request(Some("/共有"), None).unwrap();
        let path = dir.join(b"\x95\xf1\x8d\x90.txt");
        assert_eq!(path.text(), "/共有/\u{fffd}\u{fffd}.txt");
        let hex = path.hex().expect("not UTF-8, so hex");
        assert_eq!(SnapshotPath::from_request(None, Some(&hex)).unwrap(), path);
        assert_eq!(dir.hex(), None);
    }

    #[test]
    fn requests_name_one_path() {
        assert_eq!(
            SnapshotPath::from_request(None, None).unwrap(),
            SnapshotPath::root()
        );
        assert_eq!(
            SnapshotPath::from_request(Some(""), Some("")).unwrap(),
            SnapshotPath::root()
        );
        assert!(SnapshotPath::from_request(Some("/a"), Some("2f61")).is_err());
        assert!(SnapshotPath::from_request(None, Some("2g")).is_err());
        assert_eq!(SnapshotPath::root().join(b"a").join(b"b").text(), "/a/b");
        assert_eq!(
            SnapshotPath::of_names(&[b"a".to_vec(), b"b".to_vec()]).text(),
            "/a/b"
        );
    }
}
