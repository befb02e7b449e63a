//! The shape of a tenant's table, derived from its collection and nothing
//! else: the key attribute and one secondary index per indexed field, each
//! with its name, attribute and key type.
//!
//! Pure data, so that every side reads the same answer: the DynamoDB store
//! queries these indexes, the local SQLite store builds its indexes from
//! them, and the AWS target (`deploy/src/aws/table.rs`) turns them into
//! CreateTable and UpdateTable input. The table management itself is not
//! here: the Lambda binary only reads and writes items.

use crate::field::Kind;
use crate::names;
use crate::tenant::Collection;

/// The type of a key attribute, as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttributeType {
    /// A string (`S`): strings and timestamps.
    S,
    /// A number (`N`): integers and numbers.
    N,
}

impl AttributeType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::S => "S",
            AttributeType::N => "N",
        }
    }

    /// The key type of an index on a field of this kind; `None` for kinds
    /// that cannot be indexed (booleans, string lists).
    pub fn of(kind: &Kind) -> Option<AttributeType> {
        match kind {
            Kind::String(_) | Kind::Timestamp => Some(AttributeType::S),
            Kind::Integer { .. } | Kind::Number { .. } => Some(AttributeType::N),
            Kind::Boolean | Kind::StringList { .. } => None,
        }
    }
}

/// The key of an item is always a string (a ULID or a client's id).
pub const KEY_TYPE: AttributeType = AttributeType::S;

/// One secondary index: keyed on one field, every attribute projected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// `by_<field>` ([`names::index`]).
    pub name: String,
    /// The field it is keyed on.
    pub attribute: String,
    pub attribute_type: AttributeType,
}

/// A tenant's table: its key attribute and its indexes, in field order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub key: String,
    pub indexes: Vec<Index>,
}

impl TableSchema {
    /// The schema of a collection's table. A field marked indexed whose
    /// type cannot key an index has none: the tenant file's rules refuse
    /// such a file (`Kind::indexable`), so only a collection built by hand
    /// can have one.
    pub fn of(collection: &Collection) -> TableSchema {
        let indexes = collection
            .indexed()
            .filter(|f| f.name != collection.key)
            .filter_map(|f| {
                Some(Index {
                    name: names::index(&f.name),
                    attribute: f.name.clone(),
                    attribute_type: AttributeType::of(&f.kind)?,
                })
            })
            .collect();
        TableSchema {
            key: collection.key.clone(),
            indexes,
        }
    }

    /// The index keyed on this field, if any.
    pub fn index_on(&self, field: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.attribute == field)
    }

    /// The index of this name, if any.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Every key attribute of the table and its indexes with its type, the
    /// table's key first: the attribute definitions of a CreateTable.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, AttributeType)> {
        std::iter::once((self.key.as_str(), KEY_TYPE)).chain(
            self.indexes
                .iter()
                .map(|i| (i.attribute.as_str(), i.attribute_type)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection() -> Collection {
        let text = r#"
            [tenant]
            display_name = "T"
            [collection]
            name = "things"
            key = "sku"
            [collection.fields]
            name  = { type = "string" }
            size  = { type = "integer", index = true }
            color = { type = "string", index = true }
            seen  = { type = "timestamp", index = true }
            price = { type = "number", index = true }
            tags  = { type = "string_list" }
            [usage_plan]
            rate = 1
            burst = 1
        "#;
        crate::Tenant::parse(std::path::Path::new("t.toml"), text)
            .expect("valid tenant")
            .collection
    }

    #[test]
    fn a_collection_gives_its_key_and_one_index_per_indexed_field_in_order() {
        let schema = TableSchema::of(&collection());
        assert_eq!(schema.key, "sku");
        let indexes: Vec<(&str, &str, &str)> = schema
            .indexes
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.attribute.as_str(),
                    i.attribute_type.as_str(),
                )
            })
            .collect();
        assert_eq!(
            indexes,
            [
                ("by_size", "size", "N"),
                ("by_color", "color", "S"),
                ("by_seen", "seen", "S"),
                ("by_price", "price", "N"),
            ]
        );
        let attributes: Vec<_> = schema.attributes().collect();
        assert_eq!(attributes[0], ("sku", AttributeType::S));
        assert_eq!(attributes.len(), 5);
        assert_eq!(
            schema.index_on("color").map(|i| i.name.as_str()),
            Some("by_color")
        );
        assert_eq!(
            schema.index("by_price").map(|i| i.attribute.as_str()),
            Some("price")
        );
        assert!(schema.index_on("name").is_none());
    }

    #[test]
    fn only_strings_numbers_and_timestamps_key_an_index() {
        let c = collection();
        let types: Vec<_> = c
            .fields
            .iter()
            .map(|f| (f.name.as_str(), AttributeType::of(&f.kind)))
            .collect();
        assert!(types.contains(&("color", Some(AttributeType::S))));
        assert!(types.contains(&("size", Some(AttributeType::N))));
        assert!(types.contains(&("tags", None)));
        for f in &c.fields {
            assert_eq!(AttributeType::of(&f.kind).is_some(), f.kind.indexable());
        }
    }

    #[test]
    fn a_hand_built_index_on_a_boolean_has_no_index() {
        let mut c = collection();
        if let Some(f) = c.fields.iter_mut().find(|f| f.name == "name") {
            f.kind = Kind::Boolean;
            f.index = true;
        }
        assert!(TableSchema::of(&c).index_on("name").is_none());
    }
}
