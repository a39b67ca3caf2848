//! A plan's JSON kept in parts. One text value stops near 1 GB on both databases (SQLite's
//! `SQLITE_MAX_LENGTH`, PostgreSQL's field limit), and the plan of a first load of a million
//! accounts is more: such a plan is cut at character boundaries into parts of at most
//! [`PART_BYTES`]; the first stays in its owner's `plan` column, the others go to `plan_parts`,
//! and the owner's `plan_parts` column says how many follow. Reading puts them back together.

use sqlx::{Any, AnyConnection, Executor};

use crate::error::{Doing, Error, Result};

/// The largest part: well below either database's limit, and small enough that binding one does
/// not double a large plan's memory at once.
pub(crate) const PART_BYTES: usize = 32 << 20;

/// Whose plan: a run's (`runs.id`) or a held plan's (`held_plans.id`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    Run,
    Held,
}

impl Owner {
    fn as_str(self) -> &'static str {
        match self {
            Owner::Run => "run",
            Owner::Held => "held",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Owner::Run => "runs",
            Owner::Held => "held_plans",
        }
    }
}

/// `text` cut into parts of at most `max` bytes (at least one part; a character is never cut).
pub fn split(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut parts = Vec::with_capacity(text.len() / max + 1);
    let mut rest = text;
    while rest.len() > max {
        let mut at = max;
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (part, tail) = rest.split_at(at);
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// Keeps the parts after the first (those `split` gave after index 0) for `owner` `id`, in the
/// caller's transaction.
pub(crate) async fn keep(conn: &mut AnyConnection, owner: Owner, id: i64, rest: &[&str]) -> Result<()> {
    for (i, text) in rest.iter().enumerate() {
        keep_part(conn, owner, id, i + 1, text).await?;
    }
    Ok(())
}

/// Keeps part number `part` (1 for the first after the one in the owner's own column) for `owner`
/// `id`, in the caller's transaction.
pub(crate) async fn keep_part(conn: &mut AnyConnection, owner: Owner, id: i64, part: usize, text: &str) -> Result<()> {
    sqlx::query("INSERT INTO plan_parts (owner, id, part, text) VALUES ($1, $2, $3, $4)")
        .bind(owner.as_str())
        .bind(id)
        .bind(part as i64)
        .bind(text)
        .execute(&mut *conn)
        .await
        .doing(|| format!("keeping part {part} of the plan of {} {id}", owner.as_str()))?;
    Ok(())
}

/// The whole plan of `owner` `id`: `first` (its own column) followed by the `parts` rows kept
/// beside it.
pub(crate) async fn whole<'c, E>(executor: E, owner: Owner, id: i64, first: String, parts: i64) -> Result<String>
where
    E: Executor<'c, Database = Any>,
{
    if parts == 0 {
        return Ok(first);
    }
    let rest: Vec<String> =
        sqlx::query_scalar("SELECT text FROM plan_parts WHERE owner = $1 AND id = $2 ORDER BY part")
            .bind(owner.as_str())
            .bind(id)
            .fetch_all(executor)
            .await
            .doing(|| format!("reading the plan of {} {id}", owner.as_str()))?;
    if rest.len() as i64 != parts {
        return Err(Error::Corrupt {
            table: owner.table(),
            key: id.to_string(),
            column: "plan_parts",
            message: format!("the plan has {parts} part(s) after the first, but {} are kept", rest.len()),
        });
    }
    let mut text = first;
    text.reserve(rest.iter().map(String::len).sum());
    for part in rest {
        text.push_str(&part);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_bounded_cut_between_characters_and_join_to_the_text() {
        let text = "ab€cdé€€fgh";
        for max in [4, 5, 6, 7, 100] {
            let parts = split(text, max);
            assert_eq!(parts.concat(), text, "max {max}");
            assert!(parts.iter().all(|p| p.len() <= max && !p.is_empty()), "max {max}: {parts:?}");
        }
        assert_eq!(split(text, 4), ["ab", "€c", "dé", "€", "€f", "gh"]);
        assert_eq!(split("", 4), [""]);
    }
}
