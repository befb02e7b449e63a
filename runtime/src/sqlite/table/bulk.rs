//! Whole-table reads and writes for `apifactory data export` and `import`:
//! pages far larger than a search's, and many items written in one job
//! (one transaction, one fsync) instead of one job each.
//!
//! These bypass the request-unit accounting of the [`Store`] methods on
//! purpose: a bulk move is the operator's, not a client's request.
//!
//! [`Store`]: crate::store::Store

use rusqlite::{OptionalExtension, params};

use super::{Database, SqliteTable, doc_text, id_rev_doc, layout, quote, table_exists, to_item};
use crate::schema::TableSchema;
use crate::store::{Item, StoreError};

/// What a bulk write does with one incoming item, decided from the item
/// stored under its id (if any). `R` is the caller's account of it.
#[derive(Debug)]
pub enum Put<R> {
    /// Store this item (inserted, or replacing the stored one).
    Write(Item, R),
    /// Leave the stored state as it is.
    Keep(R),
    /// Write nothing of the whole batch.
    Abort(R),
}

impl Database {
    /// A table (named as on DynamoDB) if it exists, made neither nor
    /// changed: a bulk command must not deploy (or undeploy an index)
    /// behind `apply`'s back.
    pub async fn existing_table(
        &self,
        dynamo_name: &str,
        schema: &TableSchema,
    ) -> Result<Option<SqliteTable>, StoreError> {
        let (table, indexes) = layout(dynamo_name, schema)?;
        let name = table.clone();
        let exists = self.read(move |c| Ok(table_exists(c, &name)?)).await?;
        Ok(exists.then(|| self.handle(schema, table, indexes)))
    }
}

impl SqliteTable {
    /// Up to `limit` items in id order, after `after` (from the first when
    /// `None`): keyset pages, so a page costs the same wherever it starts
    /// and items written meanwhile never shift a page.
    pub async fn items_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let sql = format!(
            "SELECT id, rev, doc FROM {} WHERE id > ?1 ORDER BY id LIMIT ?2",
            quote(&self.table)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt
                    // "" sorts before every id (ids are never empty).
                    .query_map(params![after.unwrap_or_default(), limit], id_rev_doc)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.into_iter()
                    .map(|(id, rev, doc)| to_item(id, rev, &doc))
                    .collect()
            })
            .await
    }

    /// The stored items among these ids (those that exist), in one read.
    pub async fn get_many(&self, ids: Vec<String>) -> Result<Vec<Item>, StoreError> {
        let sql = self.select_by_id.to_string();
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let mut found = Vec::new();
                for id in ids {
                    let row = stmt
                        .query_row([&id], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })
                        .optional()?;
                    if let Some((rev, doc)) = row {
                        found.push(to_item(id, rev, &doc)?);
                    }
                }
                Ok(found)
            })
            .await
    }

    /// Writes a batch in one job of the writer (so one transaction, made
    /// durable before this returns): `decide` sees each incoming line with
    /// the item stored under its id, read inside the same transaction, so
    /// nothing can change between the decision and the write. Every
    /// decision is made before the first write: one `Abort` and nothing of
    /// the batch is written (`Ok(Err(_))` with the first abort's account).
    pub async fn put_many<L, R, F>(
        &self,
        lines: Vec<(String, L)>,
        decide: F,
    ) -> Result<Result<Vec<R>, R>, StoreError>
    where
        L: Send + 'static,
        R: Send + 'static,
        F: Fn(L, Option<Item>) -> Put<R> + Send + 'static,
    {
        let select = self.select_by_id.to_string();
        let upsert = format!(
            "INSERT INTO {} (id, rev, doc) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, doc = excluded.doc",
            quote(&self.table)
        );
        self.db
            .write(move |c| {
                let mut decisions = Vec::with_capacity(lines.len());
                {
                    let mut stmt = c.prepare_cached(&select)?;
                    for (id, line) in lines {
                        let row = stmt
                            .query_row([&id], |r| {
                                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                            })
                            .optional()?;
                        let stored = row.map(|(rev, doc)| to_item(id, rev, &doc)).transpose()?;
                        match decide(line, stored) {
                            Put::Abort(r) => return Ok(Err(r)),
                            put => decisions.push(put),
                        }
                    }
                }
                let mut stmt = c.prepare_cached(&upsert)?;
                let mut accounts = Vec::with_capacity(decisions.len());
                for put in decisions {
                    match put {
                        Put::Write(item, r) => {
                            stmt.execute(params![item.id, item.rev, doc_text(&item)?])?;
                            accounts.push(r);
                        }
                        Put::Keep(r) | Put::Abort(r) => accounts.push(r),
                    }
                }
                Ok(Ok(accounts))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::store::Store;
    use crate::tenant::Tenant;

    fn item(id: &str, rev: &str) -> Item {
        let serde_json::Value::Object(doc) = json!({"name": id}) else {
            unreachable!()
        };
        Item {
            id: id.into(),
            rev: rev.into(),
            doc,
        }
    }

    #[tokio::test]
    async fn a_batch_is_decided_whole_before_any_write_and_pages_follow_ids() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("local.db")).unwrap();
        let tenant = Tenant::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/conformance.toml"
        )))
        .unwrap();
        let schema = TableSchema::of(&tenant.collection);
        assert!(
            db.existing_table(&tenant.collection.table_name(&tenant.id), &schema)
                .await
                .unwrap()
                .is_none()
        );
        db.table(&tenant).await.unwrap();
        let table = db
            .existing_table(&tenant.collection.table_name(&tenant.id), &schema)
            .await
            .unwrap()
            .unwrap();
        table.create(&item("b", "r0")).await.unwrap();

        // "b" is stored: the decision aborts there, and "a" (decided to be
        // written before it) is not written either.
        let lines = vec![
            ("a".to_owned(), item("a", "r1")),
            ("b".to_owned(), item("b", "r2")),
        ];
        let aborted = table
            .put_many(
                lines.clone(),
                |line: Item, stored: Option<Item>| match stored {
                    None => Put::Write(line, "new"),
                    Some(_) => Put::Abort("conflict"),
                },
            )
            .await
            .unwrap();
        assert_eq!(aborted, Err("conflict"));
        assert_eq!(table.get("a").await.unwrap(), None);

        let written = table
            .put_many(lines, |line: Item, stored: Option<Item>| match stored {
                None => Put::Write(line, "new"),
                Some(_) => Put::Write(line, "replaced"),
            })
            .await
            .unwrap();
        assert_eq!(written, Ok(vec!["new", "replaced"]));
        assert_eq!(table.get("b").await.unwrap().unwrap().rev, "r2");

        let ids = |items: Vec<Item>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(table.items_after(None, 1).await.unwrap()), ["a"]);
        assert_eq!(
            ids(table.items_after(Some("a".into()), 5).await.unwrap()),
            ["b"]
        );
        assert_eq!(
            ids(table.get_many(vec!["b".into(), "zz".into()]).await.unwrap()),
            ["b"]
        );
    }
}
