//! Which store a config names: an SQLite file (one host) or a PostgreSQL database (several).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pg::{PgTarget, TargetError, is_postgres_url};

#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(Arc<PgTarget>),
}

impl StoreLocation {
    /// `database` as configured: a `postgresql://` URL (with the `[postgresql]` files), or a path.
    pub fn parse(database: &str, password_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Self, TargetError> {
        if is_postgres_url(database) {
            Ok(Self::Postgres(Arc::new(PgTarget::parse(database, password_file, ca_file)?)))
        } else {
            Ok(Self::Sqlite(PathBuf::from(database)))
        }
    }

    /// The SQLite file, for what only a file has (backups, locks, file ownership).
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(target) => f.write_str(target.shown()),
        }
    }
}

impl From<&Path> for StoreLocation {
    fn from(path: &Path) -> Self {
        Self::Sqlite(path.to_path_buf())
    }
}

impl From<&PathBuf> for StoreLocation {
    fn from(path: &PathBuf) -> Self {
        Self::Sqlite(path.clone())
    }
}

impl From<&StoreLocation> for StoreLocation {
    fn from(location: &StoreLocation) -> Self {
        location.clone()
    }
}
