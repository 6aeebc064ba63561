//! The migrations directory: `NNNN_name.sql` files in number order, each with the SHA-256 of its
//! contents. Other `.sql` names and duplicate numbers are errors; files that are not `.sql` are ignored.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::MigrateError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file name, which is also the name recorded on each shard.
    pub name: String,
    pub number: u64,
    /// Lowercase hex SHA-256 of the contents.
    pub checksum: String,
    pub sql: String,
}

/// Reads every migration in `dir`, in number order.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let read = |path: &Path, source| MigrateError::Read {
        path: path.into(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read(dir, e))? {
        let entry = entry.map_err(|e| read(dir, e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let sql = std::fs::read_to_string(&path).map_err(|e| read(&path, e))?;
        files.push((name, sql));
    }
    order(files)
}

/// Names, numbers and orders the `.sql` files of a directory.
fn order(files: Vec<(String, String)>) -> Result<Vec<Migration>, MigrateError> {
    let mut out = Vec::with_capacity(files.len());
    for (name, sql) in files {
        let Some(number) = number_of(&name) else {
            return Err(MigrateError::BadName { file: name });
        };
        out.push(Migration {
            checksum: checksum(&sql),
            name,
            number,
            sql,
        });
    }
    out.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    if let Some(w) = out.windows(2).find(|w| w[0].number == w[1].number) {
        return Err(MigrateError::DuplicateNumber {
            number: w[0].number,
            first: w[0].name.clone(),
            second: w[1].name.clone(),
        });
    }
    Ok(out)
}

/// The number of `NNNN_name.sql`: at least 4 digits, `_`, then a name of letters, digits, `_` or `-`.
fn number_of(file: &str) -> Option<u64> {
    let stem = file.strip_suffix(".sql")?;
    let (digits, name) = stem.split_once('_')?;
    let valid = digits.len() >= 4
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    digits.parse().ok()
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(file: &str, want: Option<u64>) {
        assert_eq!(number_of(file), want, "{file}");
    }

    #[test]
    fn names() {
        check("0001_demo_schema.sql", Some(1));
        check("0042_add-index.sql", Some(42));
        check("20240501_x.sql", Some(20240501));
        check("001_short.sql", None);
        check("0001.sql", None);
        check("0001_.sql", None);
        check("0001-demo.sql", None);
        check("00a1_demo.sql", None);
        check("0001_demo schema.sql", None);
        check("demo.sql", None);
        check("99999999999999999999999_overflow.sql", None);
    }

    fn files(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("-- {n}")))
            .collect()
    }

    #[test]
    fn ordered_by_number_with_checksums() {
        let got = order(files(&["0010_c.sql", "0002_b.sql", "0001_a.sql"])).unwrap();
        let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["0001_a.sql", "0002_b.sql", "0010_c.sql"]);
        assert_eq!(got[0].checksum, checksum("-- 0001_a.sql"));
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn bad_names_and_duplicate_numbers_are_errors() {
        let err = order(files(&["0001_a.sql", "notes.sql"])).unwrap_err();
        assert!(err.to_string().starts_with("notes.sql: "), "{err}");
        let err = order(files(&["0002_b.sql", "0001_a.sql", "00002_c.sql"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "00002_c.sql and 0002_b.sql: both have number 2"
        );
    }

    #[test]
    fn load_dir_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0001_a.sql"), "select 1").unwrap();
        std::fs::write(dir.path().join("README.md"), "docs").unwrap();
        std::fs::create_dir(dir.path().join("0002_dir.sql")).unwrap();
        let got = load_dir(dir.path()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sql, "select 1");
    }
}
