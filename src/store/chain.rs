//! The audit log's hash chains (DESIGN §12): how a row is hashed, how a row is
//! appended to its chain, how a migration chains the rows it finds, and how
//! `audit verify` walks every chain in one ordered read.
//!
//! A row's hash is SHA-256 over this encoding, the same on every backend:
//!
//! ```text
//! "shipctl audit v1"  then, for each field in this order:
//!   id, chain, seq, id_deploiement, id_env, action, etat_avant, etat_apres,
//!   message, acteur, date_log, prev_hash
//! NULL:  one byte 0x00
//! value: one byte 0x01, its length in bytes (u32, big-endian), its UTF-8 bytes
//!        (integers as decimal digits; date_log as `{ts_exact:…}` renders it)
//! ```
//!
//! and is stored as 64 lowercase hex digits. The first row of a chain has no
//! previous hash (NULL). Nothing in it is secret: the chains prove that the
//! rows are the ones written, in order, up to a head that was seen — a head
//! kept elsewhere (`audit verify --output json`) also proves the tail.

use super::Dialect;
use super::ledger::{Audit, Res, insert};
use crate::model::{Env, Etat};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// Every chain, in the order `audit verify` reports them: the environments,
/// then the events of no environment.
pub const CHAINS: [&str; 4] = ["dev", "staging", "prod", GLOBAL];
/// The chain of the events that concern no environment (a release created).
pub const GLOBAL: &str = "global";

/// What a row's hash covers, as stored.
pub struct Link<'a> {
    pub id: i64,
    pub chain: &'a str,
    pub seq: i64,
    pub deployment: Option<i64>,
    pub env_id: Option<i64>,
    pub action: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub message: &'a str,
    pub actor: &'a str,
    pub date: &'a str,
    pub prev: Option<&'a str>,
}

const DOMAIN: &[u8] = b"shipctl audit v1";

impl Link<'_> {
    /// The row's hash in hex. `buf` is reused from row to row.
    pub fn hash(&self, buf: &mut Vec<u8>) -> [u8; 64] {
        buf.clear();
        buf.extend_from_slice(DOMAIN);
        int(buf, Some(self.id));
        text(buf, Some(self.chain));
        int(buf, Some(self.seq));
        int(buf, self.deployment);
        int(buf, self.env_id);
        text(buf, Some(self.action));
        text(buf, self.before);
        text(buf, self.after);
        text(buf, Some(self.message));
        text(buf, Some(self.actor));
        text(buf, Some(self.date));
        text(buf, self.prev);
        hex(ring::digest::digest(&ring::digest::SHA256, buf).as_ref())
    }
}

fn text(buf: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            // A message is at most a few kilobytes (`fit_message`); a longer
            // value still encodes unambiguously up to 4 GiB.
            buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

fn int(buf: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => buf.push(0),
        Some(n) => {
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut rest = n.unsigned_abs();
            loop {
                at -= 1;
                digits[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            let sign = usize::from(n < 0);
            buf.push(1);
            buf.extend_from_slice(&((digits.len() - at + sign) as u32).to_be_bytes());
            if n < 0 {
                buf.push(b'-');
            }
            buf.extend_from_slice(&digits[at..]);
        }
    }
}

fn hex(bytes: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().take(32).enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

fn hex_str(h: &[u8; 64]) -> &str {
    // Only ASCII hex digits are ever written into it.
    std::str::from_utf8(h).unwrap_or_default()
}

/// The chain of a new row: its environment's (given, or its deployment's),
/// else `global`.
const CHAIN_OF: &str = "COALESCE(?, (SELECT e.nom FROM deploiements d \
     JOIN environnements e ON e.id = d.id_env WHERE d.id = ?), 'global')";

/// Appends a row to its chain in the caller's transaction; its id. Four
/// statements whatever the log's size: the chain's counter is bumped (which
/// locks it until the transaction ends: the environment's lock already
/// serialises its chain, this one serialises the `global` chain too), the
/// previous row's hash and the clock are read, the row is inserted, and its
/// hash, which covers its id, is set.
pub async fn append(c: &mut AnyConnection, d: Dialect, a: Audit<'_>) -> Res<i64> {
    let env = a.env.map(Env::as_str);
    let bumped = sqlx::query(d.sql(&format!(
        "UPDATE audit_chains SET seq = seq + 1 WHERE chain = {CHAIN_OF}"
    )))
    .bind(env)
    .bind(a.deployment)
    .execute(&mut *c)
    .await?;
    if bumped.rows_affected() != 1 {
        return Err(sqlx::Error::Protocol(
            "the audit log's chain has no row in audit_chains".into(),
        ));
    }
    let head = sqlx::query(d.sql(&format!(
        "SELECT c.chain, c.seq, e.id AS env_id, p.hash AS prev, {{now_exact}} AS now \
         FROM audit_chains c LEFT JOIN environnements e ON e.nom = c.chain \
         LEFT JOIN audit_logs p ON p.chain = c.chain AND p.seq = c.seq - 1 \
         WHERE c.chain = {CHAIN_OF}"
    )))
    .bind(env)
    .bind(a.deployment)
    .fetch_one(&mut *c)
    .await?;
    let chain: String = head.try_get("chain")?;
    let seq: i64 = head.try_get("seq")?;
    let env_id: Option<i64> = head.try_get("env_id")?;
    let prev: Option<String> = head.try_get("prev")?;
    let now: String = head.try_get("now")?;
    let message = crate::model::fit_message(&a.message).into_owned();
    let id = insert(
        c,
        d,
        "INSERT INTO audit_logs (id_deploiement, id_env, action, etat_avant, etat_apres, \
         message, acteur, date_log, chain, seq, prev_hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, {ts_param}, ?, ?, ?)",
        |q| {
            q.bind(a.deployment)
                .bind(env_id)
                .bind(a.action.to_string())
                .bind(a.before.map(Etat::as_str))
                .bind(a.after.map(Etat::as_str))
                .bind(message.clone())
                .bind(a.actor.to_string())
                .bind(now.clone())
                .bind(chain.clone())
                .bind(seq)
                .bind(prev.clone())
        },
    )
    .await?;
    let hash = Link {
        id,
        chain: &chain,
        seq,
        deployment: a.deployment,
        env_id,
        action: a.action,
        before: a.before.map(Etat::as_str),
        after: a.after.map(Etat::as_str),
        message: &message,
        actor: a.actor,
        // Bound back through `{ts_param}`, the clock's text is what is stored.
        date: &now,
        prev: prev.as_deref(),
    }
    .hash(&mut Vec::with_capacity(256 + message.len()));
    sqlx::query(d.sql("UPDATE audit_logs SET hash = ? WHERE id = ?"))
        .bind(hex_str(&hash).to_string())
        .bind(id)
        .execute(c)
        .await?;
    Ok(id)
}

/// The columns a hash covers, as `Link::from_row` reads them (by position).
const LINK_COLS: &str = "a.id, a.chain, a.seq, a.id_deploiement, a.id_env, a.action, \
     a.etat_avant, a.etat_apres, a.message, a.acteur, {ts_exact:a.date_log} AS date_log, \
     a.prev_hash, a.hash";

/// A row read with `LINK_COLS`, and its stored hash. `chain` and `seq` are
/// `None` in a row that belongs to no chain (one inserted by hand).
struct Read<'r> {
    chain: Option<&'r str>,
    seq: Option<i64>,
    link: Link<'r>,
    hash: Option<&'r str>,
}

fn read(r: &sqlx::any::AnyRow) -> Res<Read<'_>> {
    let chain: Option<&str> = r.try_get(1)?;
    let seq: Option<i64> = r.try_get(2)?;
    Ok(Read {
        chain,
        seq,
        link: Link {
            id: r.try_get(0)?,
            chain: chain.unwrap_or_default(),
            seq: seq.unwrap_or_default(),
            deployment: r.try_get(3)?,
            env_id: r.try_get(4)?,
            action: r.try_get(5)?,
            before: r.try_get(6)?,
            after: r.try_get(7)?,
            message: r.try_get(8)?,
            actor: r.try_get(9)?,
            date: r.try_get(10)?,
            prev: r.try_get(11)?,
        },
        hash: r.try_get(12)?,
    })
}

/// Chains the rows a ledger holds when migration 11 adds the chains: one
/// pass in id order (the primary key's), 500 rows per read and per write,
/// each row appended to its chain as the script set it.
pub async fn chain_existing(c: &mut AnyConnection, d: Dialect) -> Res<()> {
    const BATCH: i64 = 500;
    let select = d.expand(&format!(
        "SELECT {LINK_COLS} FROM audit_logs a WHERE a.id > ? ORDER BY a.id LIMIT ?"
    ));
    let mut buf = Vec::with_capacity(1024);
    // Each chain's last place and hash so far.
    let mut heads: Vec<(i64, Option<String>)> = vec![(0, None); CHAINS.len()];
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(after)
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut done: Vec<(i64, i64, Option<String>, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut r = read(row)?;
            after = r.link.id;
            // The script gave every row a chain; one it did not know stays out.
            let Some(at) = r.chain.and_then(|c| CHAINS.iter().position(|k| *k == c)) else {
                continue;
            };
            let (seq, prev) = &mut heads[at];
            *seq += 1;
            r.link.seq = *seq;
            r.link.prev = prev.as_deref();
            let hash = hex_str(&r.link.hash(&mut buf)).to_string();
            done.push((r.link.id, *seq, prev.replace(hash.clone()), hash));
        }
        write_links(c, d, done).await?;
        // Each batch done is the database answering: the migration's
        // watchdog waits for the next one, not for the whole log.
        crate::supervisor::phase();
    }
    sqlx::query(
        "UPDATE audit_chains SET seq = COALESCE((SELECT MAX(a.seq) FROM audit_logs a \
         WHERE a.chain = audit_chains.chain), 0)",
    )
    .execute(c)
    .await
    .map(|_| ())
}

/// Writes the places and hashes of a batch of rows. SQLite runs in the
/// process: one prepared statement per row costs less than planning a join
/// of the batch with the whole table. A server gets the batch in one
/// statement.
async fn write_links(
    c: &mut AnyConnection,
    d: Dialect,
    done: Vec<(i64, i64, Option<String>, String)>,
) -> Res<()> {
    if d.0 == super::Backend::Sqlite {
        for (id, seq, prev, hash) in done {
            sqlx::query("UPDATE audit_logs SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?")
                .bind(seq)
                .bind(prev)
                .bind(hash)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
        return Ok(());
    }
    let source =
        vec!["SELECT ? AS id, ? AS seq, ? AS prev_hash, ? AS hash"; done.len()].join(" UNION ALL ");
    let sql = d.sql(&d.update_from("audit_logs", &source, &["seq", "prev_hash", "hash"]));
    let mut q = sqlx::query(sql);
    for (id, seq, prev, hash) in done {
        q = q.bind(id).bind(seq).bind(prev).bind(hash);
    }
    q.execute(c).await.map(|_| ())
}

/// `audit verify`: what every chain holds, and the first problem of each.
#[derive(Debug, Serialize)]
pub struct Verified {
    /// No problem: every chain holds, and every row is in one.
    pub intact: bool,
    /// Rows read, in all.
    pub rows: i64,
    pub chains: Vec<ChainState>,
    /// The first problem of each chain that has one, then rows that belong
    /// to no chain; empty: the log is intact.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct ChainState {
    pub chain: String,
    pub rows: i64,
    /// The last row that holds (the chain's last row when `ok`): its id,
    /// place and hash. Kept elsewhere, they prove the tail later.
    pub head_id: Option<i64>,
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A row's hash does not match its content.
    Changed,
    /// Rows are missing (before a row, or at the end of the chain).
    Missing,
    /// A row that was not written by shipctl where it stands.
    Inserted,
    /// A row does not follow the one before it, though its own hash holds:
    /// the one before was changed and re-hashed, or rows between were removed.
    Broken,
    /// The chain holds, but not the head an anchor recorded (`--anchor`): it
    /// was rewritten, hashes recomputed, or cut short, up to that place.
    Rewritten,
}

/// A chain's head as a previous `audit verify --output json` recorded it.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
}

/// The heads of a previous `audit verify --output json` (`--anchor FILE`).
pub fn read_anchors(path: &std::path::Path) -> crate::error::Result<Vec<Anchor>> {
    let shown = path.display();
    let bad = |why: String| {
        crate::error::Error::input(format!("cannot use {shown} as an anchor: {why}"))
            .hint("pass a file written by `shipctl audit verify --output json` (its chains' heads)")
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("it is not JSON ({e})")))?;
    let chains = doc["chains"]
        .as_array()
        .ok_or_else(|| bad("it has no `chains` list".into()))?;
    let mut out = Vec::new();
    for c in chains {
        let chain = c["chain"]
            .as_str()
            .filter(|n| CHAINS.contains(n))
            .ok_or_else(|| bad(format!("a chain without a known name: {c}")))?;
        match (c["head_seq"].as_i64(), c["head_hash"].as_str()) {
            (Some(seq), Some(hash))
                if seq >= 1 && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                out.push(Anchor {
                    chain: chain.to_string(),
                    seq,
                    hash: hash.to_ascii_lowercase(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(bad(format!(
                    "the head of {chain} is not a place and a hash: {c}"
                )));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Problem {
    /// `None`: the row belongs to no chain.
    pub chain: Option<String>,
    pub kind: ProblemKind,
    /// The row named by the message.
    pub row_id: Option<i64>,
    pub message: String,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.intact
    }
}

/// One chain being walked.
struct Walk {
    chain: String,
    /// How many rows shipctl has appended to it (`audit_chains.seq`).
    written: i64,
    rows: i64,
    /// The place and hash expected next, and the last row that held.
    next: i64,
    prev_hash: Option<[u8; 64]>,
    last_id: Option<i64>,
    problem: Option<Problem>,
    /// The head an anchor recorded, if any: place and hash.
    anchor: Option<(i64, String)>,
}

impl Walk {
    fn new(chain: &str, written: i64) -> Walk {
        Walk {
            chain: chain.to_string(),
            written,
            rows: 0,
            next: 1,
            prev_hash: None,
            last_id: None,
            problem: None,
            anchor: None,
        }
    }

    fn fail(&mut self, kind: ProblemKind, row_id: Option<i64>, message: String) {
        self.problem = Some(Problem {
            chain: Some(self.chain.clone()),
            kind,
            row_id,
            message,
        });
    }

    /// Checks the next row of the chain, in `seq` order.
    fn step(&mut self, seq: i64, link: &Link<'_>, stored: Option<&str>, buf: &mut Vec<u8>) {
        self.rows += 1;
        if self.problem.is_some() {
            return;
        }
        let id = link.id;
        let computed = link.hash(buf);
        let holds = stored.is_some_and(|h| h.as_bytes() == computed);
        if seq > self.written {
            return self.fail(
                ProblemKind::Inserted,
                Some(id),
                format!(
                    "row {id} ({}) was inserted: its place in the chain ({seq}) is past the \
                     last one shipctl wrote ({})",
                    self.chain, self.written
                ),
            );
        }
        if seq < self.next {
            return self.fail(
                ProblemKind::Inserted,
                Some(id),
                format!(
                    "row {id} ({}) was inserted: another row already holds place {seq}",
                    self.chain
                ),
            );
        }
        if seq > self.next {
            let n = seq - self.next;
            let what = if n == 1 {
                "a row is missing".to_string()
            } else {
                format!("{n} rows are missing")
            };
            return self.fail(
                ProblemKind::Missing,
                Some(id),
                format!("{what} before row {id} ({})", self.chain),
            );
        }
        if link.prev.map(str::as_bytes) != self.prev_hash.as_ref().map(|h| &h[..]) {
            let after = self
                .last_id
                .map(|l| format!("row {l}"))
                .unwrap_or_else(|| "the start of the chain".into());
            return if holds {
                self.fail(
                    ProblemKind::Broken,
                    Some(id),
                    format!(
                        "the chain breaks before row {id} ({}): it follows another row than \
                         {after} (that row was changed and its hash recomputed, or rows between \
                         them were removed)",
                        self.chain
                    ),
                )
            } else {
                self.fail(
                    ProblemKind::Inserted,
                    Some(id),
                    format!(
                        "row {id} ({}) was inserted: it does not follow {after} and its hash \
                         does not match its content",
                        self.chain
                    ),
                )
            };
        }
        if !holds {
            return self.fail(
                ProblemKind::Changed,
                Some(id),
                format!(
                    "row {id} ({}) was changed: its hash does not match its content",
                    self.chain
                ),
            );
        }
        if let Some((at, hash)) = &self.anchor
            && *at == seq
            && hash.as_bytes() != computed
        {
            return self.fail(
                ProblemKind::Rewritten,
                Some(id),
                format!(
                    "row {id} ({}) is not the row the anchor recorded at place {seq}: the chain \
                     was rewritten up to it, its hashes recomputed",
                    self.chain
                ),
            );
        }
        self.next += 1;
        self.prev_hash = Some(computed);
        self.last_id = Some(id);
    }

    fn end(mut self) -> (ChainState, Option<Problem>) {
        let last = self.next - 1;
        if let Some((at, _)) = &self.anchor
            && self.problem.is_none()
            && last < *at
        {
            let message = format!(
                "the anchor recorded place {at} in the chain ({}), which now ends at place \
                 {last}: rows were removed and the chain's counter set back",
                self.chain
            );
            self.fail(ProblemKind::Rewritten, self.last_id, message);
        }
        if self.problem.is_none() && last < self.written {
            let n = self.written - last;
            let what = if n == 1 {
                "a row is missing".to_string()
            } else {
                format!("{n} rows are missing")
            };
            let after = self
                .last_id
                .map(|l| format!(", after row {l}"))
                .unwrap_or_default();
            let message = format!(
                "{what} at the end of the chain ({}){after}: shipctl wrote {} {} to it",
                self.chain,
                self.written,
                if self.written == 1 { "row" } else { "rows" }
            );
            self.fail(ProblemKind::Missing, self.last_id, message);
        }
        let ok = self.problem.is_none();
        (
            ChainState {
                chain: self.chain,
                rows: self.rows,
                head_id: self.last_id,
                head_seq: (last > 0).then_some(last),
                head_hash: self.prev_hash.as_ref().map(|h| hex_str(h).to_string()),
                ok,
            },
            self.problem,
        )
    }
}

/// The walk of every chain, fed one row at a time in id order.
struct Verifier {
    out: Verified,
    walks: Vec<Walk>,
    unchained: Vec<Problem>,
    buf: Vec<u8>,
}

impl Verifier {
    /// `written`: each chain's counter (`audit_chains`), read in the same
    /// snapshot as the rows.
    fn new(written: &[(String, i64)], anchors: &[Anchor]) -> Verifier {
        let walks = CHAINS
            .iter()
            .map(|c| {
                let n = written.iter().find(|(w, _)| w == c).map_or(0, |(_, n)| *n);
                let mut walk = Walk::new(c, n);
                walk.anchor = anchors
                    .iter()
                    .find(|a| a.chain == *c)
                    .map(|a| (a.seq, a.hash.clone()));
                walk
            })
            .collect();
        Verifier {
            out: Verified {
                intact: false,
                rows: 0,
                chains: Vec::new(),
                problems: Vec::new(),
            },
            walks,
            unchained: Vec::new(),
            buf: Vec::with_capacity(1024),
        }
    }

    fn row(&mut self, r: &Read<'_>) {
        self.out.rows += 1;
        // A long log is still one answer from the database: each stretch of
        // rows re-arms the watchdog (`supervisor::phase`).
        if self.out.rows % 65_536 == 0 {
            crate::supervisor::phase();
        }
        let at = r.chain.and_then(|c| CHAINS.iter().position(|k| *k == c));
        let (Some(at), Some(seq)) = (at, r.seq) else {
            // Only the first few are named: a forged batch is one problem.
            if self.unchained.len() < 10 {
                self.unchained.push(unchained_problem(r));
            }
            return;
        };
        self.walks[at].step(seq, &r.link, r.hash, &mut self.buf);
    }

    fn finish(mut self) -> Verified {
        for (state, problem) in self.walks.into_iter().map(Walk::end) {
            self.out.chains.push(state);
            self.out.problems.extend(problem);
        }
        self.out.problems.extend(self.unchained);
        self.out.intact = self.out.problems.is_empty();
        self.out
    }
}

/// The rows in id order, the primary key's: one sequential read. A chain's
/// rows are written in the order of their places (its counter is locked from
/// before the row's id is taken until it commits), so each chain is walked in
/// place order; a row out of that order was moved by hand.
const VERIFY_SQL: &str = "SELECT {LINK_COLS} FROM audit_logs a ORDER BY a.id";

/// Recomputes every chain in one ordered read of the log, streamed (constant
/// memory): the first problem of each chain, and rows that belong to none.
pub async fn verify(c: &mut AnyConnection, d: Dialect, anchors: &[Anchor]) -> Res<Verified> {
    let written: Vec<(String, i64)> = sqlx::query("SELECT chain, seq FROM audit_chains")
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Res<_>>()?;
    let mut v = Verifier::new(&written, anchors);
    let sql = d.sql(&VERIFY_SQL.replace("{LINK_COLS}", LINK_COLS));
    let mut rows = sqlx::query(sql).fetch(&mut *c);
    while let Some(row) = rows.try_next().await? {
        v.row(&read(&row)?);
    }
    Ok(v.finish())
}

/// `verify` on a SQLite ledger, through SQLite's C API on a read-only
/// connection of its own, in one read transaction (blocking: run it on a
/// blocking thread). `busy_ms`: how long to wait for a lock.
pub fn verify_sqlite(path: &std::path::Path, busy_ms: i32, anchors: &[Anchor]) -> Res<Verified> {
    let db = super::scan::Db::open(path, busy_ms)?;
    db.exec("BEGIN")?;
    let mut written = Vec::new();
    {
        let mut heads = db.prepare("SELECT chain, seq FROM audit_chains")?;
        while heads.step()? {
            written.push((
                heads.text(0).unwrap_or_default().to_string(),
                heads.int(1).unwrap_or_default(),
            ));
        }
    }
    let mut v = Verifier::new(&written, anchors);
    let sql = Dialect(super::Backend::Sqlite).expand(&VERIFY_SQL.replace("{LINK_COLS}", LINK_COLS));
    let mut rows = db.prepare(&sql)?;
    while rows.step()? {
        let (chain, seq) = (rows.text(1), rows.int(2));
        v.row(&Read {
            chain,
            seq,
            link: Link {
                id: rows.int(0).unwrap_or_default(),
                chain: chain.unwrap_or_default(),
                seq: seq.unwrap_or_default(),
                deployment: rows.int(3),
                env_id: rows.int(4),
                action: rows.text(5).unwrap_or_default(),
                before: rows.text(6),
                after: rows.text(7),
                message: rows.text(8).unwrap_or_default(),
                actor: rows.text(9).unwrap_or_default(),
                date: rows.text(10).unwrap_or_default(),
                prev: rows.text(11),
            },
            hash: rows.text(12),
        });
    }
    drop(rows);
    db.exec("COMMIT")?;
    Ok(v.finish())
}

fn unchained_problem(r: &Read<'_>) -> Problem {
    let id = r.link.id;
    let why = match (r.chain, r.seq) {
        (None, _) => "it belongs to no chain".to_string(),
        (Some(c), _) if !CHAINS.contains(&c) => format!("{c:?} is not a chain"),
        (Some(c), _) => format!("it has no place in the chain {c}"),
    };
    Problem {
        chain: r.chain.filter(|c| CHAINS.contains(c)).map(str::to_string),
        kind: ProblemKind::Inserted,
        row_id: Some(id),
        message: format!("row {id} was inserted: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link<'a>(message: &'a str, prev: Option<&'a str>) -> Link<'a> {
        Link {
            id: 42,
            chain: "prod",
            seq: 7,
            deployment: Some(3),
            env_id: Some(3),
            action: "deployment.succeeded",
            before: Some("en_cours"),
            after: Some("réussi"),
            message,
            actor: "alice",
            date: "2026-11-30 12:00:00.123",
            prev,
        }
    }

    #[test]
    fn the_hash_covers_every_field_unambiguously() {
        let mut buf = Vec::new();
        let base = link("deployed", None).hash(&mut buf);
        assert_eq!(base, link("deployed", None).hash(&mut buf));
        assert_ne!(base, link("deployed!", None).hash(&mut buf));
        assert_ne!(base, link("deployed", Some("")).hash(&mut buf));
        // Moving text from one field to the next changes the hash.
        let mut a = link("ab", None);
        a.actor = "c";
        let mut b = link("a", None);
        b.actor = "bc";
        assert_ne!(a.hash(&mut buf), b.hash(&mut buf));
        // NULL and empty differ.
        let mut n = link("deployed", None);
        n.before = None;
        let mut e = link("deployed", None);
        e.before = Some("");
        assert_ne!(n.hash(&mut buf), e.hash(&mut buf));
        let mut neg = link("deployed", None);
        neg.deployment = Some(-3);
        assert_ne!(base, neg.hash(&mut buf));
        assert!(base.iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let mut buf = Vec::new();
        let mut l = link("m", None);
        l.id = 1;
        l.seq = 1;
        l.deployment = None;
        l.env_id = Some(-12);
        l.before = None;
        l.after = None;
        l.chain = "dev";
        l.action = "a";
        l.actor = "x";
        l.date = "d";
        let got = l.hash(&mut buf);
        let mut want: Vec<u8> = b"shipctl audit v1".to_vec();
        for f in [
            Some("1"),
            Some("dev"),
            Some("1"),
            None,
            Some("-12"),
            Some("a"),
            None,
            None,
            Some("m"),
            Some("x"),
            Some("d"),
            None,
        ] {
            match f {
                None => want.push(0),
                Some(s) => {
                    want.push(1);
                    want.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    want.extend_from_slice(s.as_bytes());
                }
            }
        }
        assert_eq!(buf, want);
        let digest = ring::digest::digest(&ring::digest::SHA256, &want);
        assert_eq!(got, hex(digest.as_ref()));
    }

    /// A chain of `n` rows as shipctl writes them: (id, seq, prev, hash, message).
    fn written(n: i64) -> Vec<(i64, i64, Option<String>, String, String)> {
        let mut buf = Vec::new();
        let mut prev: Option<String> = None;
        (1..=n)
            .map(|seq| {
                let message = format!("row {seq}");
                let mut l = link(&message, prev.as_deref());
                l.id = seq * 10;
                l.seq = seq;
                let hash = hex_str(&l.hash(&mut buf)).to_string();
                (
                    seq * 10,
                    seq,
                    prev.replace(hash.clone()),
                    hash,
                    message.clone(),
                )
            })
            .collect()
    }

    /// Walks `rows` as `verify` reads them; the problem found, if any.
    fn walk(
        rows: &[(i64, i64, Option<String>, String, String)],
        written: i64,
    ) -> Option<(ProblemKind, Option<i64>, String)> {
        let mut w = Walk::new("prod", written);
        let mut buf = Vec::new();
        for (id, seq, prev, hash, message) in rows {
            let mut l = link(message, prev.as_deref());
            l.id = *id;
            l.seq = *seq;
            w.step(*seq, &l, Some(hash), &mut buf);
        }
        let (state, problem) = w.end();
        assert_eq!(state.ok, problem.is_none());
        problem.map(|p| (p.kind, p.row_id, p.message))
    }

    #[test]
    fn each_alteration_is_named_by_its_row() {
        let rows = written(5);
        assert_eq!(walk(&rows, 5), None);
        let mut changed = rows.clone();
        changed[2].4 = "forged".into();
        assert_eq!(
            walk(&changed, 5),
            Some((
                ProblemKind::Changed,
                Some(30),
                "row 30 (prod) was changed: its hash does not match its content".into()
            ))
        );
        let mut removed = rows.clone();
        removed.remove(1);
        assert_eq!(
            walk(&removed, 5),
            Some((
                ProblemKind::Missing,
                Some(30),
                "a row is missing before row 30 (prod)".into()
            ))
        );
        let truncated = &rows[..3];
        let (kind, row, message) = walk(truncated, 5).expect("a problem");
        assert_eq!((kind, row), (ProblemKind::Missing, Some(30)));
        assert!(
            message.starts_with("2 rows are missing at the end of the chain (prod), after row 30")
        );
        // A row added past the last place shipctl wrote.
        let mut past = rows.clone();
        let last = past[4].3.clone();
        past.push((60, 6, Some(last.clone()), last, "forged".into()));
        assert_eq!(
            walk(&past, 5).map(|p| (p.0, p.1)),
            Some((ProblemKind::Inserted, Some(60)))
        );
        // Places renumbered after a removal: the place is hashed, so the
        // renumbered row neither holds nor follows.
        let mut renumbered = rows.clone();
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.1 -= 1;
        }
        assert_eq!(
            walk(&renumbered, 4).map(|p| (p.0, p.1)),
            Some((ProblemKind::Inserted, Some(30)))
        );
        // A row changed and its hash recomputed by someone who knows the
        // encoding: it holds, the next one no longer follows it.
        let mut rehashed = rows.clone();
        rehashed[1].4 = "forged".into();
        let mut l = link(&rehashed[1].4, rehashed[1].2.as_deref());
        l.id = 20;
        l.seq = 2;
        rehashed[1].3 = hex_str(&l.hash(&mut Vec::new())).to_string();
        assert_eq!(
            walk(&rehashed, 5).map(|p| (p.0, p.1)),
            Some((ProblemKind::Broken, Some(30)))
        );
        // A forged row in the middle with a made-up hash and link.
        let mut forged = rows.clone();
        forged[2].2 = Some("0".repeat(64));
        assert_eq!(
            walk(&forged, 5).map(|p| (p.0, p.1)),
            Some((ProblemKind::Inserted, Some(30)))
        );
    }
}
