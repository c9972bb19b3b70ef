//! Deploy windows and freezes (DESIGN §10): whether an environment is open at an
//! instant, why not, and when that next changes. Pure: the caller brings the
//! instant (the database clock); windows are judged on the zone's wall clock.

use crate::manifest::schema::{WindowSpec, WindowsSpec};
use crate::manifest::words::cut;
use crate::model::Env;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use std::fmt;

/// How far ahead `state` looks for the next change; past it, there is none.
pub const HORIZON_DAYS: i64 = 400;
/// Longest `reason:` of a window: it is quoted in every "closed" message.
pub const MAX_REASON_CHARS: usize = 200;

/// The `why` of a closed environment that no deny window closes.
pub const OUTSIDE_ALLOWED: &str = "outside the allowed windows";

/// An environment's windows, read from its policy (`parse`). The default has
/// none: always open.
#[derive(Debug, Clone)]
pub struct Windows {
    pub timezone: TimeZone,
    /// The zone's IANA name, for messages.
    pub zone_name: String,
    /// Empty: open at any time no deny window covers.
    pub allow: Vec<Window>,
    /// Each closes the environment, whatever the allow windows say.
    pub deny: Vec<Window>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            timezone: TimeZone::UTC,
            zone_name: "UTC".into(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// A span of wall-clock time, start included, end excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// From `from` on each of `days`; an end earlier than the start falls on
    /// the next day (overnight).
    Weekly {
        days: Days,
        from: Time,
        to: End,
        reason: Option<String>,
    },
    /// Once, between two wall-clock date-times of the zone.
    OneOff {
        from: DateTime,
        to: DateTime,
        reason: Option<String>,
    },
}

/// Where a weekly window ends: at a time of day, or at the end of the day
/// (`"24:00"`, which a `Time` cannot hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    At(Time),
    EndOfDay,
}

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(u8);

impl Days {
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & bit(day) != 0
    }

    /// Adds `day`; false when it was already there.
    pub fn insert(&mut self, day: Weekday) -> bool {
        let had = self.contains(day);
        self.0 |= bit(day);
        !had
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Monday first.
    pub fn iter(self) -> impl Iterator<Item = Weekday> {
        DAY_NAMES
            .iter()
            .map(|(_, d)| *d)
            .filter(move |d| self.contains(*d))
    }
}

impl FromIterator<Weekday> for Days {
    fn from_iter<I: IntoIterator<Item = Weekday>>(iter: I) -> Self {
        let mut days = Days::default();
        for d in iter {
            days.insert(d);
        }
        days
    }
}

fn bit(day: Weekday) -> u8 {
    1 << day.to_monday_zero_offset()
}

/// The names `days:` takes, in order.
pub const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES
        .iter()
        .find(|(_, d)| *d == day)
        .map_or("?", |(n, _)| n)
}

impl Window {
    /// Whether the wall-clock date-time `at` falls in the window.
    pub fn contains(&self, at: DateTime) -> bool {
        match self {
            Window::Weekly { days, from, to, .. } => {
                let (time, day) = (at.time(), at.date().weekday());
                let started_today = days.contains(day) && time >= *from;
                match to {
                    End::EndOfDay => started_today,
                    End::At(to) if to > from => started_today && time < *to,
                    // Overnight: the evening of a listed day, or the morning after.
                    End::At(to) if to < from => {
                        started_today || (days.contains(day.previous()) && time < *to)
                    }
                    End::At(_) => false,
                }
            }
            Window::OneOff { from, to, .. } => *from <= at && at < *to,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Window::Weekly { reason, .. } | Window::OneOff { reason, .. } => reason.as_deref(),
        }
    }

    /// The wall-clock date-times at which a window starting on `date` starts
    /// and ends (weekly windows: only on the days they list).
    fn bounds_on(&self, date: Date) -> Option<(DateTime, Option<DateTime>)> {
        let Window::Weekly { days, from, to, .. } = self else {
            return None;
        };
        if !days.contains(date.weekday()) {
            return None;
        }
        let next_day = |t: Time| date.tomorrow().ok().map(|d| DateTime::from_parts(d, t));
        let end = match to {
            End::EndOfDay => next_day(Time::midnight()),
            End::At(t) if t > from => Some(DateTime::from_parts(date, *t)),
            End::At(t) if t < from => next_day(*t),
            End::At(_) => None,
        };
        Some((DateTime::from_parts(date, *from), end))
    }
}

/// `fri 15:00–24:00`, `mon,tue 22:00–06:00`, `2026-12-20 00:00 – 2027-01-04 00:00`.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Weekly { days, from, to, .. } => {
                let names: Vec<&str> = days.iter().map(day_name).collect();
                let to = match to {
                    End::At(t) => hh_mm(*t),
                    End::EndOfDay => "24:00".into(),
                };
                write!(f, "{} {}–{to}", names.join(","), hh_mm(*from))
            }
            Window::OneOff { from, to, .. } => {
                write!(f, "{} – {}", date_hh_mm(*from), date_hh_mm(*to))
            }
        }
    }
}

fn hh_mm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn date_hh_mm(dt: DateTime) -> String {
    format!("{} {}", dt.date(), hh_mm(dt.time()))
}

/// Whether an environment is open at an instant, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub open: bool,
    /// Closed: the reason of the deny window that closes it (or the window
    /// itself when it gives none), or `OUTSIDE_ALLOWED`. Open: `None`.
    pub why: Option<String>,
    /// When it next opens (closed) or closes (open), in the windows' zone;
    /// `None` when that does not happen within `HORIZON_DAYS`.
    pub next_change: Option<ZonedDateTime>,
}

impl State {
    /// How long from `now` until the next change, for a watcher to wake up then.
    pub fn until_change(&self, now: Timestamp) -> Option<std::time::Duration> {
        let next = self.next_change.as_ref()?.timestamp();
        next.duration_since(now).try_into().ok()
    }
}

/// The state of `w` at `now`. Open iff (no allow window, or `now` is in one)
/// and `now` is in no deny window. The next change is found among the instants
/// where a window's wall-clock start or end occurs (both of them in a repeated
/// hour) and the zone's own transitions (where the wall clock jumps over a
/// boundary), the state just at each being the state until the next.
pub fn state(w: &Windows, now: Timestamp) -> State {
    let (open, why) = judge(w, now);
    let next_change = candidates(w, now)
        .into_iter()
        .find(|t| judge(w, *t).0 != open)
        .map(|t| t.to_zoned_datetime(w.timezone.clone()));
    State {
        open,
        why,
        next_change,
    }
}

fn judge(w: &Windows, at: Timestamp) -> (bool, Option<String>) {
    let wall = w.timezone.to_datetime(at);
    if let Some(d) = w.deny.iter().find(|d| d.contains(wall)) {
        let why = match d.reason() {
            Some(r) => r.to_string(),
            None => format!("the deny window {d}"),
        };
        return (false, Some(why));
    }
    if !w.allow.is_empty() && !w.allow.iter().any(|a| a.contains(wall)) {
        return (false, Some(OUTSIDE_ALLOWED.into()));
    }
    (true, None)
}

/// The instants in (now, now + horizon] at which the state may change, sorted.
fn candidates(w: &Windows, now: Timestamp) -> Vec<Timestamp> {
    if w.allow.is_empty() && w.deny.is_empty() {
        return Vec::new();
    }
    let horizon = now
        .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
        .unwrap_or(Timestamp::MAX);
    let tz = &w.timezone;
    // From the day before (an overnight window that started then ends today)
    // to the day after the horizon's.
    let first = tz.to_datetime(now).date();
    let first = first.yesterday().unwrap_or(first);
    let last = tz.to_datetime(horizon).date();
    let last = last.tomorrow().unwrap_or(last);

    let mut walls: Vec<DateTime> = Vec::new();
    for window in w.allow.iter().chain(&w.deny) {
        match window {
            Window::Weekly { .. } => {
                let mut day = first;
                while day <= last {
                    if let Some((start, end)) = window.bounds_on(day) {
                        walls.push(start);
                        walls.extend(end);
                    }
                    match day.tomorrow() {
                        Ok(next) => day = next,
                        Err(_) => break,
                    }
                }
            }
            Window::OneOff { from, to, .. } => walls.extend([*from, *to]),
        }
    }
    let mut out: Vec<Timestamp> = Vec::with_capacity(walls.len() * 2);
    for wall in walls {
        let ambiguous = tz.to_ambiguous_timestamp(wall);
        out.extend(ambiguous.earlier().ok());
        out.extend(ambiguous.later().ok());
    }
    out.extend(
        tz.following(now)
            .map(|t| t.timestamp())
            .take_while(|t| *t <= horizon),
    );
    out.retain(|t| *t > now && *t <= horizon);
    out.sort();
    out.dedup();
    out
}

/// DESIGN's wording: "prod is closed until Mon 2026-12-07 09:00 Europe/Paris
/// (no Friday deploys)", "prod is open until Fri 2026-12-04 15:00 Europe/Paris".
pub fn message(env: Env, state: &State) -> String {
    let until = state.next_change.as_ref().map(|z| {
        let zone = z.time_zone().iana_name().unwrap_or("UTC");
        format!("{} {zone}", z.strftime("%a %Y-%m-%d %H:%M"))
    });
    let why = state.why.as_deref().unwrap_or(OUTSIDE_ALLOWED);
    match (state.open, until) {
        (true, Some(until)) => format!("{env} is open until {until}"),
        (true, None) => format!("{env} is open"),
        (false, Some(until)) => format!("{env} is closed until {until} ({why})"),
        (false, None) => {
            format!("{env} is closed, and does not open in the next {HORIZON_DAYS} days ({why})")
        }
    }
}

// ---------------------------------------------------------------- parsing

/// Why a `windows:` cannot be read: the key path under the environment
/// (`windows.deny[1].days`), the message, the hint, and the YAML key and the
/// user's text that locate the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
    pub hint: String,
    pub near: Option<(&'static str, String)>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

const TIME_HINT: &str = "write times as \"HH:MM\" on a 24-hour clock, from \"00:00\" to \
                         \"23:59\"; \"24:00\" ends a window at the end of the day";
const DATE_HINT: &str =
    "write a one-off window's from and to as \"YYYY-MM-DD HH:MM\", e.g. \"2026-12-20 00:00\"";
const DAYS_HINT: &str =
    "days are mon, tue, wed, thu, fri, sat and sun, e.g. days: [mon, tue, wed, thu, fri]";

/// Reads a `windows:` as the manifests (or a stored policy) hold it. `check`
/// refuses what this refuses, so a stored policy reads unless a newer shipctl
/// wrote it.
pub fn parse(spec: &WindowsSpec) -> Result<Windows, Invalid> {
    let name = spec.timezone.as_deref().unwrap_or("UTC");
    let timezone = zone(name)?;
    let zone_name = timezone.iana_name().unwrap_or(name).to_string();
    let list = |items: &[WindowSpec], key: &str| {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| window(item, &format!("windows.{key}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Windows {
        timezone,
        zone_name,
        allow: list(&spec.allow, "allow")?,
        deny: list(&spec.deny, "deny")?,
    })
}

fn zone(name: &str) -> Result<TimeZone, Invalid> {
    let invalid = |message: String| Invalid {
        key: "windows.timezone".into(),
        message,
        hint: "use an IANA time zone name such as Europe/Paris, America/New_York or UTC".into(),
        near: Some(("timezone", name.to_string())),
    };
    if name.trim().is_empty() {
        return Err(invalid("the time zone is empty".into()));
    }
    TimeZone::get(name).map_err(|_| invalid(format!("unknown time zone {:?}", cut(name))))
}

fn window(item: &WindowSpec, key: &str) -> Result<Window, Invalid> {
    let invalid =
        |sub: &str, message: String, hint: &str, near: Option<(&'static str, &str)>| Invalid {
            key: if sub.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{sub}")
            },
            message,
            hint: hint.to_string(),
            near: near.map(|(k, v)| (k, v.to_string())),
        };
    let reason = match &item.reason {
        None => None,
        Some(r) => {
            let near = Some(("reason", r.as_str()));
            let bad = |m: String| {
                invalid(
                    "reason",
                    m,
                    "say in a few words why, e.g. reason: holiday freeze",
                    near,
                )
            };
            if r.trim().is_empty() {
                return Err(bad("the reason is empty".into()));
            }
            crate::model::check_chars("the reason", r, MAX_REASON_CHARS).map_err(bad)?;
            crate::model::check_text("the reason", r).map_err(bad)?;
            Some(r.clone())
        }
    };
    let (from_text, to_text) = (item.from.as_str(), item.to.as_str());
    let one_off_from = date_time(from_text);
    match &item.days {
        None => {
            let from = match one_off_from {
                Ok(from) => from,
                Err(_) if time(from_text).is_ok() => {
                    return Err(invalid(
                        "",
                        "days: is missing; a window whose from and to are times repeats on \
                         the days it lists"
                            .into(),
                        "add days:, e.g. days: [mon, tue, wed, thu, fri]; a one-off window \
                         gives from and to as dates and times, e.g. \"2026-12-20 00:00\"",
                        Some(("from", from_text)),
                    ));
                }
                Err(m) if from_text.contains('-') => {
                    return Err(invalid("from", m, DATE_HINT, Some(("from", from_text))));
                }
                Err(_) => {
                    return Err(invalid(
                        "from",
                        format!(
                            "{:?} is neither a date and time (\"2026-12-20 00:00\") nor a time \
                             of day (\"09:00\")",
                            cut(from_text)
                        ),
                        "a one-off window runs between two dates and times; a weekly one has \
                         days: and times, e.g. { days: [fri], from: \"15:00\", to: \"24:00\" }",
                        Some(("from", from_text)),
                    ));
                }
            };
            let to = date_time(to_text).map_err(|m| {
                invalid(
                    "to",
                    format!("{m}; from is a date and time, so this is a one-off window"),
                    DATE_HINT,
                    Some(("to", to_text)),
                )
            })?;
            if to <= from {
                let message = if to == from {
                    format!("the window ends when it starts ({})", date_hh_mm(from))
                } else {
                    format!(
                        "the window ends at {}, before it starts ({})",
                        date_hh_mm(to),
                        date_hh_mm(from)
                    )
                };
                return Err(invalid(
                    "to",
                    message,
                    "a one-off window runs from its from to its to: check the dates, or swap them",
                    Some(("to", to_text)),
                ));
            }
            Ok(Window::OneOff { from, to, reason })
        }
        Some(names) => {
            if one_off_from.is_ok() || date_time(to_text).is_ok() {
                return Err(invalid(
                    "days",
                    "days apply to weekly windows, but from and to are dates: this is a \
                     one-off window"
                        .into(),
                    "remove days: for a one-off window, or write from and to as times of day, \
                     e.g. from: \"09:00\", to: \"17:00\"",
                    Some(("from", from_text)),
                ));
            }
            let days = days(names)
                .map_err(|(m, h, near)| invalid("days", m, h, Some(("days", near.as_str()))))?;
            let from = match time(from_text) {
                Ok(End::At(t)) => t,
                Ok(End::EndOfDay) => {
                    return Err(invalid(
                        "from",
                        "a window cannot start at 24:00, the end of the day".into(),
                        "start it at \"00:00\" on the next day",
                        Some(("from", from_text)),
                    ));
                }
                Err(m) => return Err(invalid("from", m, TIME_HINT, Some(("from", from_text)))),
            };
            let to =
                time(to_text).map_err(|m| invalid("to", m, TIME_HINT, Some(("to", to_text))))?;
            if to == End::At(from) {
                return Err(invalid(
                    "",
                    format!(
                        "from and to are both {}: the window would be empty",
                        hh_mm(from)
                    ),
                    "for the whole day write from: \"00:00\", to: \"24:00\"; a to earlier \
                     than from ends the next day",
                    Some(("from", from_text)),
                ));
            }
            Ok(Window::Weekly {
                days,
                from,
                to,
                reason,
            })
        }
    }
}

/// `days:`; `Err((message, hint, the offending text))`.
fn days(names: &[String]) -> Result<Days, (String, &'static str, String)> {
    if names.is_empty() {
        return Err((
            "the list of days is empty: the window would never apply".into(),
            DAYS_HINT,
            String::new(),
        ));
    }
    let mut days = Days::default();
    for name in names {
        let Some((_, day)) = DAY_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        else {
            return Err((
                format!(
                    "{:?} is not a day; use mon, tue, wed, thu, fri, sat or sun",
                    cut(name)
                ),
                DAYS_HINT,
                name.clone(),
            ));
        };
        if !days.insert(*day) {
            return Err((
                format!("{} is listed twice", day_name(*day)),
                "list each day once",
                name.clone(),
            ));
        }
    }
    Ok(days)
}

/// `"HH:MM"` (or `"H:MM"`), or `"24:00"`.
fn time(text: &str) -> Result<End, String> {
    let not = || format!("{:?} is not a time of day (HH:MM)", cut(text));
    let (h, m) = text.split_once(':').ok_or_else(not)?;
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(not());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| not())?, m.parse().map_err(|_| not())?);
    if (h, m) == (24, 0) {
        return Ok(End::EndOfDay);
    }
    Time::new(h, m, 0, 0).map(End::At).map_err(|_| {
        format!(
            "{:?} is not a time of day: hours go from 00 to 23 and minutes from 00 to 59",
            cut(text)
        )
    })
}

/// `"YYYY-MM-DD HH:MM"`; `24:00` is the start of the next day.
fn date_time(text: &str) -> Result<DateTime, String> {
    let not = || format!("{:?} is not a date and time (YYYY-MM-DD HH:MM)", cut(text));
    let (date_text, time_text) = text.split_once(' ').ok_or_else(not)?;
    let parts: Vec<&str> = date_text.split('-').collect();
    let [y, mo, d] = parts.as_slice() else {
        return Err(not());
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(mo, 2) && digits(d, 2)) {
        return Err(not());
    }
    let number = |s: &str| s.parse::<i16>().map_err(|_| not());
    let (y, mo, d) = (number(y)?, number(mo)?, number(d)?);
    let date = i8::try_from(mo)
        .ok()
        .zip(i8::try_from(d).ok())
        .and_then(|(mo, d)| Date::new(y, mo, d).ok())
        .ok_or_else(|| format!("{:?} is not a date of the calendar", cut(date_text)))?;
    match time(time_text).map_err(|_| not())? {
        End::At(t) => Ok(DateTime::from_parts(date, t)),
        End::EndOfDay => date
            .tomorrow()
            .map(|next| DateTime::from_parts(next, Time::midnight()))
            .map_err(|_| not()),
    }
}

#[cfg(test)]
mod tests;
