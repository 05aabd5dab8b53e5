//! Lists read from the store: the rows that read well, and the ones that did not, set aside so
//! that one bad row (written by an older version, or by hand) never hides the others.

use std::ops::Deref;

/// A row a list skipped, named so that an operator can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow {
    pub table: &'static str,
    pub id: i64,
    pub reason: String,
}

/// What a list query returns: `items` in order, and the rows skipped. Derefs to the items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<UnreadableRow>,
}

impl<T> Listing<T> {
    /// Converts each raw row, setting aside (and logging) those `convert` refuses.
    pub(super) fn read<R, E: std::fmt::Display>(
        table: &'static str,
        rows: Vec<R>,
        id: impl Fn(&R) -> i64,
        convert: impl Fn(R) -> Result<T, E>,
    ) -> Self {
        let mut listing = Self { items: Vec::with_capacity(rows.len()), unreadable: Vec::new() };
        for row in rows {
            let row_id = id(&row);
            match convert(row) {
                Ok(item) => listing.items.push(item),
                Err(e) => {
                    tracing::warn!(table, id = row_id, error = %e, "store: skipped an unreadable row");
                    listing.unreadable.push(UnreadableRow { table, id: row_id, reason: e.to_string() });
                }
            }
        }
        listing
    }
}

impl<T> Deref for Listing<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<'a, T> IntoIterator for &'a Listing<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_row_is_set_aside_and_the_rest_kept_in_order() {
        let rows = vec![(1, "a"), (2, "bad"), (3, "c")];
        let listing = Listing::read("t", rows, |r| r.0, |(_, s)| if s == "bad" { Err("unreadable") } else { Ok(s) });
        assert_eq!(listing.items, ["a", "c"]);
        assert_eq!(listing.unreadable, [UnreadableRow { table: "t", id: 2, reason: "unreadable".into() }]);
        assert_eq!(listing.len(), 2, "derefs to the items");
    }
}
