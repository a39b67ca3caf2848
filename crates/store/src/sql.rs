//! A query with bound values that runs on SQLite and on PostgreSQL alike.
//!
//! sqlx's own `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL
//! refuses; this writes `$1`, `$2`, ..., which both accept. Its methods are `QueryBuilder`'s.

use std::fmt::Write;

use sqlx::any::{Any, AnyArguments};
use sqlx::query::{Query, QueryAs};
use sqlx::{Arguments, AssertSqlSafe, Encode, FromRow, Type};

/// The most values one statement binds. sqlx's SQLite driver finds the number of each `$n`
/// placeholder by asking SQLite for its name, which SQLite looks up in a list as long as the
/// statement's placeholders, so binding costs the square of their number: a 500-row insert of 12
/// columns took a fifth of a first load's CPU, and at 256 values `sqlite3_bind_parameter_name`
/// was still 6 % of an apply's. Small statements, many of them, cost far less (PostgreSQL does
/// not mind either way).
pub(crate) const MAX_BINDS: usize = 64;

/// Rows of `columns` values per multi-row statement, within [`MAX_BINDS`].
pub(crate) const fn rows_per_statement(columns: usize) -> usize {
    MAX_BINDS / columns
}

pub(crate) struct Sql {
    text: String,
    arguments: AnyArguments,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql { text: text.into(), arguments: AnyArguments::default() }
    }

    pub(crate) fn push(&mut self, text: impl AsRef<str>) -> &mut Sql {
        self.text.push_str(text.as_ref());
        self
    }

    pub(crate) fn push_bind<'t, T>(&mut self, value: T) -> &mut Sql
    where
        T: Encode<'t, Any> + Type<Any> + 't,
    {
        // `Any` encodes a value by keeping it, which cannot fail; were it to, the query would
        // run with a value missing and the database would refuse it, naming the placeholder.
        let _ = self.arguments.add(value);
        let _ = write!(self.text, "${}", self.arguments.len());
        self
    }

    /// Items separated by `separator`, each pushed by the caller through the [`Separated`].
    pub(crate) fn separated<'s>(&'s mut self, separator: &'static str) -> Separated<'s> {
        Separated { sql: self, separator, first: true }
    }

    /// `VALUES (..), (..)`: one tuple per item, its values bound by `push_tuple`.
    pub(crate) fn push_values<I, F>(&mut self, tuples: I, mut push_tuple: F) -> &mut Sql
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        self.push("VALUES ");
        for (i, tuple) in tuples.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            push_tuple(self.separated(", "), tuple);
            self.push(")");
        }
        self
    }

    pub(crate) fn build(self) -> Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.text), self.arguments)
    }

    pub(crate) fn build_query_as<O>(self) -> QueryAs<'static, Any, O, AnyArguments>
    where
        O: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(AssertSqlSafe(self.text), self.arguments)
    }
}

/// Pushes items with a separator between them (see [`Sql::separated`]).
pub(crate) struct Separated<'s> {
    sql: &'s mut Sql,
    separator: &'static str,
    first: bool,
}

impl Separated<'_> {
    fn separate(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.sql.push(self.separator);
        }
    }

    pub(crate) fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + 't,
    {
        self.separate();
        self.sql.push_bind(value);
        self
    }
}
