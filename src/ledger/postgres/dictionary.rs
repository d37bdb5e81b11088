//! The dictionary ids of a batch's strings (keys, models, providers, endpoints, error
//! labels), cached in process: after the first batches a batch needs no dictionary query.
//!
//! A name is looked up first and inserted only when missing (`ON CONFLICT DO NOTHING` for an
//! instance adding it at the same time): inserting every name blindly would burn an identity
//! value per conflict, and the `smallint` tables have 32k of them. Names are committed on
//! their own, before the batch's transaction: a batch that fails leaves at most unused
//! names, and the cache holds only committed ids.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use super::connect::{error, Lease};
use crate::ledger::row::Row;
use crate::ledger::{Dict, LedgerError};

pub struct Dictionary {
    ids: RwLock<HashMap<(Dict, String), i32>>,
}

/// The ids of one row's strings (`error` 0: no error).
#[derive(Debug, Clone, Copy)]
pub struct RowIds {
    pub key: i32,
    pub model: i32,
    pub provider: i16,
    pub endpoint: i16,
    pub error: i16,
}

impl Dictionary {
    pub fn new() -> Self {
        Self {
            ids: RwLock::new(HashMap::new()),
        }
    }

    fn cached(&self, dict: Dict, name: &str) -> Result<Option<i32>, LedgerError> {
        let ids = self
            .ids
            .read()
            .map_err(|_| LedgerError::Store("dictionary lock poisoned".into()))?;
        Ok(ids.get(&(dict, name.to_string())).copied())
    }

    /// The ids of every row's strings, adding the names the database lacks.
    pub async fn resolve(
        &self,
        lease: &mut Lease,
        name: &str,
        rows: &[Row<'_>],
    ) -> Result<Vec<RowIds>, LedgerError> {
        let mut missing: HashMap<Dict, BTreeSet<&str>> = HashMap::new();
        for row in rows {
            for (dict, text) in strings(row) {
                if self.cached(dict, text)?.is_none() {
                    missing.entry(dict).or_default().insert(text);
                }
            }
        }
        for (dict, names) in missing {
            let names: Vec<&str> = names.into_iter().collect();
            self.load(lease, name, dict, &names).await?;
        }
        rows.iter().map(|row| self.row_ids(row)).collect()
    }

    fn row_ids(&self, row: &Row<'_>) -> Result<RowIds, LedgerError> {
        let id = |dict, text: &str| {
            self.cached(dict, text)?.ok_or_else(|| {
                LedgerError::Store(format!("{} has no id for {text:?}", dict.table()))
            })
        };
        let small = |dict: Dict, v: i32| {
            i16::try_from(v).map_err(|_| {
                LedgerError::Store(format!("{} id {v} exceeds smallint", dict.table()))
            })
        };
        Ok(RowIds {
            key: id(Dict::Key, row.key)?,
            model: id(Dict::Model, row.model)?,
            provider: small(Dict::Provider, id(Dict::Provider, row.provider)?)?,
            endpoint: small(Dict::Endpoint, id(Dict::Endpoint, row.endpoint)?)?,
            error: match row.error {
                Some(e) => small(Dict::Error, id(Dict::Error, e)?)?,
                None => 0,
            },
        })
    }

    /// Reads the ids of `names` into the cache, inserting those not in the table yet.
    async fn load(
        &self,
        lease: &mut Lease,
        name: &str,
        dict: Dict,
        names: &[&str],
    ) -> Result<(), LedgerError> {
        let table = dict.table();
        let client = lease.client()?;
        let select = format!("SELECT id::int4, name FROM {table} WHERE name = ANY($1)");
        let mut found = self.read(client, name, &select, names).await?;
        let absent: Vec<&str> = names
            .iter()
            .filter(|n| !found.iter().any(|(_, f)| f == *n))
            .copied()
            .collect();
        if !absent.is_empty() {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (name) SELECT n FROM unnest($1::text[]) n \
                         ORDER BY n ON CONFLICT (name) DO NOTHING"
                    ),
                    &[&absent],
                )
                .await
                .map_err(|e| error(name, table, e))?;
            found.extend(self.read(client, name, &select, &absent).await?);
        }
        let mut ids = self
            .ids
            .write()
            .map_err(|_| LedgerError::Store("dictionary lock poisoned".into()))?;
        for (id, text) in found {
            ids.insert((dict, text), id);
        }
        Ok(())
    }

    async fn read(
        &self,
        client: &deadpool_postgres::Object,
        name: &str,
        select: &str,
        names: &[&str],
    ) -> Result<Vec<(i32, String)>, LedgerError> {
        let rows = client
            .query(select, &[&names])
            .await
            .map_err(|e| error(name, "dictionary", e))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| error(name, "dictionary", e))
    }
}

/// The dictionary-encoded strings of a row.
fn strings<'a>(row: &Row<'a>) -> impl Iterator<Item = (Dict, &'a str)> {
    [
        (Dict::Key, Some(row.key)),
        (Dict::Model, Some(row.model)),
        (Dict::Provider, Some(row.provider)),
        (Dict::Endpoint, Some(row.endpoint)),
        (Dict::Error, row.error),
    ]
    .into_iter()
    .filter_map(|(d, t)| t.map(|t| (d, t)))
}
