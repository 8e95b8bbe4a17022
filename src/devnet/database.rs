//! The devnet's own database on an existing PostgreSQL server: created fresh for the run,
//! dropped at the end unless kept.

use sqlx::{Connection, PgConnection};

use super::error::DevnetError;

/// A database created for this run.
#[derive(Debug, Clone)]
pub struct DevnetDatabase {
    server_url: String,
    /// Its name.
    pub name: String,
    /// The URL that connects to it.
    pub url: String,
}

/// `url` with its database path replaced by `name` (query parameters kept).
///
/// # Errors
/// [`DevnetError::Refused`] when `url` is not a `postgres://` or `postgresql://` URL.
pub fn with_database(url: &str, name: &str) -> Result<String, DevnetError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_at = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| base.starts_with(scheme).then_some(scheme.len()))
        .ok_or_else(|| {
            DevnetError::refused("database url", format!("{url:?} is not a postgres:// URL"))
        })?;
    let server = match base[authority_at..].find('/') {
        Some(slash) => &base[..authority_at + slash],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

impl DevnetDatabase {
    /// Creates `fiamma_devnet_<pid>_<unix secs>` on the server of `server_url`.
    ///
    /// # Errors
    /// [`DevnetError::Database`] when the server cannot be reached or refuses.
    pub async fn create(server_url: &str) -> Result<Self, DevnetError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("fiamma_devnet_{}_{secs}", std::process::id());
        let url = with_database(server_url, &name)?;
        let mut admin = connect(server_url).await?;
        // The name is made of digits, letters and underscores only, so quoting is enough.
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .map_err(|source| DevnetError::Database {
                action: format!("create database {name}"),
                source,
            })?;
        let _ = admin.close().await;
        Ok(DevnetDatabase {
            server_url: server_url.to_owned(),
            name,
            url,
        })
    }

    /// Drops the database, closing any connection still open to it.
    ///
    /// # Errors
    /// [`DevnetError::Database`] when the server refuses.
    pub async fn drop_database(&self) -> Result<(), DevnetError> {
        let mut admin = connect(&self.server_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .map_err(|source| DevnetError::Database {
            action: format!("drop database {}", self.name),
            source,
        })?;
        let _ = admin.close().await;
        Ok(())
    }
}

async fn connect(url: &str) -> Result<PgConnection, DevnetError> {
    PgConnection::connect(url)
        .await
        .map_err(|source| DevnetError::Database {
            action: "connect to the server".to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_path_is_replaced_and_the_rest_kept() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            ("postgres://h", "postgres://h/x"),
            (
                "postgresql://u:p@h:1/db?sslmode=disable",
                "postgresql://u:p@h:1/x?sslmode=disable",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(with_database(given, "x").expect("a url"), want);
        }
        assert!(with_database("mysql://h/db", "x").is_err());
    }
}
