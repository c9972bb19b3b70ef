//! `audit verify` on SQLite, read through SQLite's C API: sqlx hands each row
//! from its worker thread to the caller and copies every value, which costs
//! ten times the hashing; here the rows are read where SQLite keeps them, on
//! a read-only connection of the command's own, in one read transaction.

use libsqlite3_sys as ffi;
use std::ffi::{CStr, CString};
use std::ptr;

type Res<T> = sqlx::Result<T>;

fn fail(what: &str, msg: String) -> sqlx::Error {
    sqlx::Error::Protocol(format!("SQLite: {what}: {msg}"))
}

pub struct Db(*mut ffi::sqlite3);

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: the handle came from sqlite3_open_v2 and its statements are
        // finalized first (they borrow the Db).
        unsafe {
            ffi::sqlite3_close(self.0);
        }
    }
}

fn errmsg(db: *mut ffi::sqlite3) -> String {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by SQLite.
    unsafe {
        let m = ffi::sqlite3_errmsg(db);
        if m.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(m).to_string_lossy().into_owned()
        }
    }
}

impl Db {
    /// Opens the file read-only, waiting up to `busy_ms` for a lock.
    pub fn open(path: &std::path::Path, busy_ms: i32) -> Res<Db> {
        use std::os::unix::ffi::OsStrExt;
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| fail("opening the ledger", "the path holds a NUL byte".into()))?;
        let mut db = ptr::null_mut();
        // NOMUTEX: one thread uses the connection, so SQLite need not lock it
        // around every call (a quarter of the time otherwise).
        let flags = ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: a valid C string and out-pointer; the handle is closed on error.
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        if rc != ffi::SQLITE_OK {
            let msg = errmsg(db);
            // SAFETY: closing a handle that failed to open is allowed (NULL too).
            unsafe { ffi::sqlite3_close(db) };
            return Err(fail("opening the ledger", msg));
        }
        // SAFETY: a valid handle.
        unsafe { ffi::sqlite3_busy_timeout(db, busy_ms) };
        Ok(Db(db))
    }

    pub fn exec(&self, sql: &str) -> Res<()> {
        let c = CString::new(sql).map_err(|_| fail(sql, "NUL in SQL".into()))?;
        // SAFETY: a valid handle and C string; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(self.0, c.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(fail(sql, errmsg(self.0)));
        }
        Ok(())
    }

    pub fn prepare(&self, sql: &str) -> Res<Stmt<'_>> {
        let c = CString::new(sql).map_err(|_| fail(sql, "NUL in SQL".into()))?;
        let mut stmt = ptr::null_mut();
        // SAFETY: a valid handle, C string and out-pointer.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(self.0, c.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(fail(sql, errmsg(self.0)));
        }
        Ok(Stmt { stmt, db: self })
    }
}

pub struct Stmt<'db> {
    stmt: *mut ffi::sqlite3_stmt,
    db: &'db Db,
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: a statement from sqlite3_prepare_v2, finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

impl Stmt<'_> {
    /// The next row: `true` while there is one.
    pub fn step(&mut self) -> Res<bool> {
        // SAFETY: a valid statement.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(fail("reading the audit log", errmsg(self.db.0))),
        }
    }

    fn is_null(&self, i: i32) -> bool {
        // SAFETY: a valid statement on a row.
        unsafe { ffi::sqlite3_column_type(self.stmt, i) == ffi::SQLITE_NULL }
    }

    /// Column `i` as an integer, NULL as `None`.
    pub fn int(&self, i: i32) -> Option<i64> {
        if self.is_null(i) {
            return None;
        }
        // SAFETY: a valid statement on a row.
        Some(unsafe { ffi::sqlite3_column_int64(self.stmt, i) })
    }

    /// Column `i` as text, borrowed until the next step; NULL as `None`. Bytes
    /// that are not UTF-8 read as a text that no hash can match.
    pub fn text(&self, i: i32) -> Option<&str> {
        if self.is_null(i) {
            return None;
        }
        // SAFETY: the pointer and length describe SQLite's copy of the value,
        // valid until the next step, reset or finalize (all need `&mut self`).
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.stmt, i);
            let n = ffi::sqlite3_column_bytes(self.stmt, i);
            if p.is_null() || n <= 0 {
                return Some("");
            }
            std::slice::from_raw_parts(p, n as usize)
        };
        Some(std::str::from_utf8(bytes).unwrap_or("\u{fffd} not UTF-8"))
    }
}
