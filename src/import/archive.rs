//! The mirror as policy-controller's `mirrorFS` takes it: a tar.gz whose entries sit under one
//! top directory (`repository/`). Deterministic: entries sorted by path with each directory
//! before its contents, fixed mode, owner and modification time, no file name or time in the
//! gzip header, so that the same repository always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::ImportError;

/// Every entry's modification time: 1980-01-01T00:00:00Z (some unpackers warn about 0).
const MTIME: u64 = 315_532_800;

/// A tar.gz of `files` (paths relative to `top`, `/`-separated) under the directory `top`.
pub(super) fn tar_gz(top: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, ImportError> {
    let archive_error = |e: std::io::Error| ImportError::Archive(e.to_string());
    let mut directories = BTreeSet::new();
    directories.insert(format!("{top}/"));
    for path in files.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        let mut prefix = String::new();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            directories.insert(format!("{top}/{prefix}"));
        }
    }
    // A directory's path is a prefix of its contents' paths, so one sort puts it first.
    let mut entries: Vec<(String, Option<&[u8]>)> = directories
        .into_iter()
        .map(|d| (d, None))
        .chain(
            files
                .iter()
                .map(|(path, data)| (format!("{top}/{path}"), Some(data.as_slice()))),
        )
        .collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gzip);
    for (path, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match data {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, &path, std::io::empty())
                    .map_err(archive_error)?;
            }
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, &path, data)
                    .map_err(archive_error)?;
            }
        }
    }
    let gzip = tar.into_inner().map_err(archive_error)?;
    gzip.finish().map_err(archive_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        files.insert("timestamp.json".to_string(), b"{}".to_vec());
        files.insert("1.root.json".to_string(), b"{\"a\":1}".to_vec());
        files.insert(
            format!("targets/{}.trusted_root.json", "ab".repeat(32)),
            b"trusted".to_vec(),
        );
        files
    }

    #[test]
    fn same_files_give_the_same_bytes_sorted_under_the_top_directory() {
        let first = tar_gz("repository", &sample()).unwrap();
        let second = tar_gz("repository", &sample()).unwrap();
        assert_eq!(first, second);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(first.as_slice())
            .read_to_end(&mut tar_bytes)
            .unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            assert_eq!(header.mtime().unwrap(), MTIME);
            assert_eq!(header.uid().unwrap(), 0);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((path, header.entry_type().is_dir(), data));
        }
        let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "repository/",
                "repository/1.root.json",
                "repository/targets/",
                &format!("repository/targets/{}.trusted_root.json", "ab".repeat(32)),
                "repository/timestamp.json",
            ]
        );
        assert!(seen[0].1 && seen[2].1);
        assert_eq!(seen[3].2, b"trusted");
    }
}
