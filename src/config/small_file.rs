//! Reading the small text files we are pointed at (the config file, repmgr.conf,
//! .pgpass): only regular files, and only up to a limit, so a path to a device, a FIFO
//! or a huge file is an error, never a hang or an unbounded read.

use std::io::{self, Read};
use std::path::Path;

/// Far above any real config file, far below trouble.
pub const LIMIT: u64 = 1024 * 1024;

pub fn read(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(LIMIT + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {LIMIT} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_huge_files_are_refused() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        assert!(read(Path::new("/")).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; (LIMIT + 1) as usize]).expect("write");
        assert!(read(&big).unwrap_err().to_string().contains("larger than"));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "node_id=1\n").expect("write");
        assert_eq!(read(&ok).expect("read"), "node_id=1\n");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert_eq!(read(&fifo).unwrap_err().to_string(), "not a regular file");
    }
}
