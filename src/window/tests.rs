use super::*;

/// `windows:` as a manifest writes it, parsed.
fn windows(yaml: &str) -> Windows {
    let spec: WindowsSpec = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    parse(&spec).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

/// An instant written in RFC 3339 with its offset (unambiguous in a repeated hour).
fn at(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("{text} is not an instant: {e}"))
}

/// DESIGN §10's prod, verbatim.
const DESIGN: &str = r#"
timezone: Europe/Paris
allow:
  - { days: [mon, tue, wed, thu], from: "09:00", to: "17:00" }
deny:
  - { from: "2026-12-20 00:00", to: "2027-01-04 00:00", reason: holiday freeze }
  - { days: [fri], from: "15:00", to: "24:00", reason: no Friday deploys }
"#;

/// Office hours on weekdays, no Friday afternoon.
const OFFICE: &str = r#"
timezone: Europe/Paris
allow: [{ days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00" }]
deny: [{ days: [fri], from: "15:00", to: "24:00", reason: no Friday deploys }]
"#;

struct Case {
    name: &'static str,
    windows: &'static str,
    /// The instant judged, RFC 3339.
    now: &'static str,
    open: bool,
    why: Option<&'static str>,
    /// The next change, RFC 3339 with the zone's offset then; `None`: none
    /// within the horizon.
    next: Option<&'static str>,
}

const fn case(
    name: &'static str,
    windows: &'static str,
    now: &'static str,
    open: bool,
    why: Option<&'static str>,
    next: Option<&'static str>,
) -> Case {
    Case {
        name,
        windows,
        now,
        open,
        why,
        next,
    }
}

const OUT: Option<&str> = Some(OUTSIDE_ALLOWED);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // ---- weekly, and DESIGN's example
    case("inside an allow window", DESIGN, "2026-12-03T10:00:00+01:00", true, None,
         Some("2026-12-03T17:00:00+01:00")),
    case("the start is inside", DESIGN, "2026-12-03T09:00:00+01:00", true, None,
         Some("2026-12-03T17:00:00+01:00")),
    case("the end is outside", DESIGN, "2026-12-03T17:00:00+01:00", false, OUT,
         Some("2026-12-07T09:00:00+01:00")),
    case("before the first window of the day", DESIGN, "2026-12-02T08:59:00+01:00", false, OUT,
         Some("2026-12-02T09:00:00+01:00")),
    case("Friday is not an allowed day: closed across the weekend", DESIGN,
         "2026-12-04T10:00:00+01:00", false, OUT, Some("2026-12-07T09:00:00+01:00")),
    case("Friday afternoon: the deny reason, open on Monday", DESIGN,
         "2026-12-04T16:00:00+01:00", false, Some("no Friday deploys"),
         Some("2026-12-07T09:00:00+01:00")),
    case("the weekend before the freeze opens after it", DESIGN,
         "2026-12-19T12:00:00+01:00", false, OUT, Some("2027-01-04T09:00:00+01:00")),
    case("in the freeze, deny wins over an allow window", DESIGN,
         "2026-12-22T10:00:00+01:00", false, Some("holiday freeze"),
         Some("2027-01-04T09:00:00+01:00")),
    case("the freeze's end is outside it", DESIGN, "2027-01-04T00:00:00+01:00", false, OUT,
         Some("2027-01-04T09:00:00+01:00")),
    case("open on Friday morning until the deny window", OFFICE,
         "2026-12-04T10:00:00+01:00", true, None, Some("2026-12-04T15:00:00+01:00")),
    case("closed on Friday afternoon until Monday", OFFICE,
         "2026-12-04T15:00:00+01:00", false, Some("no Friday deploys"),
         Some("2026-12-07T09:00:00+01:00")),
    case("Friday evening: still the deny window's reason", OFFICE,
         "2026-12-04T20:00:00+01:00", false, Some("no Friday deploys"),
         Some("2026-12-07T09:00:00+01:00")),

    // ---- overnight: to < from ends the next day
    case("overnight, the evening", NIGHTS, "2026-12-01T23:00:00Z", false,
         Some("the deny window mon,tue,wed,thu,fri 22:00–06:00"), Some("2026-12-02T06:00:00Z")),
    case("overnight, the morning after a listed day", NIGHTS, "2026-12-05T03:00:00Z", false,
         Some("the deny window mon,tue,wed,thu,fri 22:00–06:00"), Some("2026-12-05T06:00:00Z")),
    case("overnight, not the morning after an unlisted day", NIGHTS, "2026-12-07T03:00:00Z",
         true, None, Some("2026-12-07T22:00:00Z")),
    case("overnight, Sunday's morning (Saturday unlisted): open until Monday night", NIGHTS,
         "2026-12-06T03:00:00Z", true, None, Some("2026-12-07T22:00:00Z")),
    case("overnight allow to 00:00 is to 24:00", "allow: [{ days: [sat], from: \"20:00\", to: \"00:00\" }]",
         "2026-12-05T23:59:00Z", true, None, Some("2026-12-06T00:00:00Z")),

    // ---- 24:00
    case("a whole day, 00:00 to 24:00", "allow: [{ days: [sat], from: \"00:00\", to: \"24:00\" }]",
         "2026-12-04T12:00:00Z", false, OUT, Some("2026-12-05T00:00:00Z")),
    case("24:00 closes at midnight", "allow: [{ days: [sat], from: \"00:00\", to: \"24:00\" }]",
         "2026-12-05T23:59:00Z", true, None, Some("2026-12-06T00:00:00Z")),
    case("windows that meet at midnight make one", ADJACENT, "2026-12-04T21:00:00Z", true,
         None, Some("2026-12-05T08:00:00Z")),

    // ---- one-off
    case("before a one-off deny", ONE_OFF, "2026-12-24T17:00:00Z", true, None,
         Some("2026-12-24T18:00:00Z")),
    case("in a one-off deny", ONE_OFF, "2026-12-25T12:00:00Z", false, Some("Christmas"),
         Some("2026-12-26T00:00:00Z")),
    case("a one-off deny ending at 24:00", ONE_OFF_24, "2026-12-31T23:00:00Z", false,
         Some("the deny window 2026-12-31 00:00 – 2027-01-01 00:00"), Some("2027-01-01T00:00:00Z")),
    case("after a one-off deny: open for good", ONE_OFF, "2026-12-26T00:00:00Z", true, None,
         None),
    case("a one-off allow only: closed after it for good", "allow: [{ from: \"2026-12-01 00:00\", to: \"2026-12-02 00:00\" }]",
         "2026-12-03T00:00:00Z", false, OUT, None),
    case("a freeze longer than the horizon", "deny: [{ from: \"2026-01-01 00:00\", to: \"2028-06-01 00:00\", reason: migration }]",
         "2026-03-01T00:00:00Z", false, Some("migration"), None),

    // ---- allow and deny overlap: deny wins
    case("lunch inside office hours", LUNCH, "2026-12-02T12:30:00Z", false, Some("lunch"),
         Some("2026-12-02T13:00:00Z")),
    case("office hours until lunch", LUNCH, "2026-12-02T11:00:00Z", true, None,
         Some("2026-12-02T12:00:00Z")),
    case("two deny windows overlap: the first listed says why, the last one's end opens",
         OVERLAP, "2026-12-02T13:00:00Z", false, Some("a"), Some("2026-12-02T16:00:00Z")),

    // ---- Europe/Paris: spring forward 2026-03-29 02:00 → 03:00, back 2026-10-25 03:00 → 02:00
    case("Paris: 09:00 is 09:00 local after spring forward", DAILY_PARIS,
         "2026-03-28T18:00:00+01:00", false, OUT, Some("2026-03-29T09:00:00+02:00")),
    case("Paris: the spring-forward hour never occurs", SPRING_HOUR_PARIS,
         "2026-03-29T01:30:00+01:00", false, OUT, Some("2026-04-05T02:00:00+02:00")),
    case("Paris: a window starting in the gap opens when the clock jumps past its start",
         SPRING_LATE_PARIS, "2026-03-29T01:30:00+01:00", false, OUT,
         Some("2026-03-29T03:00:00+02:00")),
    case("Paris: before the repeated hour", AUTUMN_HOUR_PARIS, "2026-10-25T01:30:00+02:00",
         true, None, Some("2026-10-25T02:00:00+02:00")),
    case("Paris: the repeated hour's first pass counts, and so does the second",
         AUTUMN_HOUR_PARIS, "2026-10-25T02:30:00+02:00", false, Some("maintenance"),
         Some("2026-10-25T03:00:00+01:00")),
    case("Paris: the repeated hour's second pass", AUTUMN_HOUR_PARIS,
         "2026-10-25T02:30:00+01:00", false, Some("maintenance"),
         Some("2026-10-25T03:00:00+01:00")),
    case("Paris: the clock falling back leaves a window starting at 02:30", AUTUMN_LATE_PARIS,
         "2026-10-25T02:45:00+02:00", true, None, Some("2026-10-25T02:00:00+01:00")),
    case("Paris: and it opens again at the second 02:30", AUTUMN_LATE_PARIS,
         "2026-10-25T02:10:00+01:00", false, OUT, Some("2026-10-25T02:30:00+01:00")),

    // ---- America/New_York: spring forward 2026-03-08 02:00 → 03:00, back 2026-11-01 02:00 → 01:00
    case("New York: the spring-forward hour never occurs", SPRING_HOUR_NY,
         "2026-03-08T01:00:00-05:00", false, OUT, Some("2026-03-15T02:00:00-04:00")),
    case("New York: 09:00 is 09:00 local across fall back and a weekend", OFFICE_NY,
         "2026-10-30T17:30:00-04:00", false, OUT, Some("2026-11-02T09:00:00-05:00")),
    case("New York: before the repeated hour", AUTUMN_HOUR_NY, "2026-11-01T00:30:00-04:00",
         true, None, Some("2026-11-01T01:00:00-04:00")),
    case("New York: the repeated hour's first pass", AUTUMN_HOUR_NY,
         "2026-11-01T01:30:00-04:00", false, Some("backup"), Some("2026-11-01T02:00:00-05:00")),
    case("New York: the repeated hour's second pass", AUTUMN_HOUR_NY,
         "2026-11-01T01:30:00-05:00", false, Some("backup"), Some("2026-11-01T02:00:00-05:00")),

    // ---- no windows
    case("no windows: always open", "{}", "2026-12-04T16:00:00Z", true, None, None),
    case("a zone and nothing else: always open", "timezone: Europe/Paris",
         "2026-12-04T16:00:00Z", true, None, None),
];

const NIGHTS: &str = "deny: [{ days: [mon, tue, wed, thu, fri], from: \"22:00\", to: \"06:00\" }]";
const ADJACENT: &str = r#"
allow:
  - { days: [fri], from: "20:00", to: "24:00" }
  - { days: [sat], from: "00:00", to: "08:00" }
"#;
const ONE_OFF: &str =
    "deny: [{ from: \"2026-12-24 18:00\", to: \"2026-12-26 00:00\", reason: Christmas }]";
const ONE_OFF_24: &str = "deny: [{ from: \"2026-12-31 00:00\", to: \"2026-12-31 24:00\" }]";
const LUNCH: &str = r#"
allow: [{ days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00" }]
deny: [{ days: [wed], from: "12:00", to: "13:00", reason: lunch }]
"#;
const OVERLAP: &str = r#"
deny:
  - { days: [wed], from: "10:00", to: "14:00", reason: a }
  - { days: [wed], from: "12:00", to: "16:00", reason: b }
"#;
const DAILY_PARIS: &str = r#"
timezone: Europe/Paris
allow: [{ days: [mon, tue, wed, thu, fri, sat, sun], from: "09:00", to: "17:00" }]
"#;
const SPRING_HOUR_PARIS: &str = r#"
timezone: Europe/Paris
allow: [{ days: [sun], from: "02:00", to: "03:00" }]
"#;
const SPRING_LATE_PARIS: &str = r#"
timezone: Europe/Paris
allow: [{ days: [sun], from: "02:30", to: "04:00" }]
"#;
const AUTUMN_HOUR_PARIS: &str = r#"
timezone: Europe/Paris
deny: [{ days: [sun], from: "02:00", to: "03:00", reason: maintenance }]
"#;
const AUTUMN_LATE_PARIS: &str = SPRING_LATE_PARIS;
const SPRING_HOUR_NY: &str = r#"
timezone: America/New_York
allow: [{ days: [sun], from: "02:00", to: "03:00" }]
"#;
const OFFICE_NY: &str = r#"
timezone: America/New_York
allow: [{ days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00" }]
"#;
const AUTUMN_HOUR_NY: &str = r#"
timezone: America/New_York
deny: [{ days: [sun], from: "01:00", to: "02:00", reason: backup }]
"#;

#[test]
fn the_table() {
    let mut failures = Vec::new();
    for c in CASES {
        let w = windows(c.windows);
        let s = state(&w, at(c.now));
        let next = s.next_change.as_ref().map(|z| z.timestamp());
        let wanted_next = c.next.map(at);
        if s.open != c.open || s.why.as_deref() != c.why || next != wanted_next {
            failures.push(format!(
                "{}: at {}\n  got    open={} why={:?} next={:?}\n  wanted open={} why={:?} next={:?}",
                c.name,
                c.now,
                s.open,
                s.why,
                s.next_change.as_ref().map(|z| z.to_string()),
                c.open,
                c.why,
                c.next
            ));
        }
        if let Some(z) = &s.next_change {
            assert_eq!(z.time_zone().iana_name(), Some(w.zone_name.as_str()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_state_just_before_the_next_change_is_unchanged() {
    // Between now and the change, the state is what it was: the change found is
    // the first one (sampled each minute up to it, for every case of the table).
    for c in CASES {
        let w = windows(c.windows);
        let now = at(c.now);
        let s = state(&w, now);
        let Some(next) = s.next_change.map(|z| z.timestamp()) else {
            continue;
        };
        let mut t = now;
        while t < next {
            assert_eq!(judge(&w, t).0, s.open, "{}: at {t}", c.name);
            t += SignedDuration::from_mins(1);
        }
        assert_ne!(judge(&w, next).0, s.open, "{}: at {next}", c.name);
    }
}

#[test]
fn messages_say_when_and_why() {
    let w = windows(DESIGN);
    let s = state(&w, at("2026-12-04T16:00:00+01:00"));
    assert_eq!(
        message(Env::Prod, &s),
        "prod is closed until Mon 2026-12-07 09:00 Europe/Paris (no Friday deploys)"
    );
    let s = state(&windows(OFFICE), at("2026-12-04T10:00:00+01:00"));
    assert_eq!(
        message(Env::Prod, &s),
        "prod is open until Fri 2026-12-04 15:00 Europe/Paris"
    );
    let s = state(&windows(DESIGN), at("2026-12-03T18:00:00+01:00"));
    assert_eq!(
        message(Env::Prod, &s),
        "prod is closed until Mon 2026-12-07 09:00 Europe/Paris (outside the allowed windows)"
    );
    let s = state(
        &windows("deny: [{ days: [sat], from: \"00:00\", to: \"24:00\" }]"),
        at("2026-12-05T10:00:00Z"),
    );
    assert_eq!(
        message(Env::Staging, &s),
        "staging is closed until Sun 2026-12-06 00:00 UTC (the deny window sat 00:00–24:00)"
    );
    let s = state(&Windows::default(), at("2026-12-04T16:00:00Z"));
    assert_eq!(message(Env::Prod, &s), "prod is open");
    let s = state(
        &windows(
            "deny: [{ from: \"2026-01-01 00:00\", to: \"2030-01-01 00:00\", reason: migration }]",
        ),
        at("2026-03-01T00:00:00Z"),
    );
    assert_eq!(
        message(Env::Dev, &s),
        "dev is closed, and does not open in the next 400 days (migration)"
    );
}

#[test]
fn until_change_is_the_wait_for_a_watcher() {
    let w = windows(DESIGN);
    let now = at("2026-12-07T08:59:58+01:00");
    let s = state(&w, now);
    assert_eq!(s.until_change(now), Some(std::time::Duration::from_secs(2)));
    assert_eq!(state(&Windows::default(), now).until_change(now), None);
}

#[test]
fn the_default_is_utc_and_open() {
    let w = Windows::default();
    let s = state(&w, at("2026-12-04T16:00:00Z"));
    assert_eq!(
        s,
        State {
            open: true,
            why: None,
            next_change: None
        }
    );
    assert_eq!(windows("{}").zone_name, "UTC");
    assert_eq!(windows("timezone: Europe/Paris").zone_name, "Europe/Paris");
}

#[test]
fn parsed_windows_are_what_the_manifest_says() {
    let w = windows(DESIGN);
    assert_eq!(w.allow.len(), 1);
    assert_eq!(w.allow[0].to_string(), "mon,tue,wed,thu 09:00–17:00");
    assert_eq!(w.deny[0].to_string(), "2026-12-20 00:00 – 2027-01-04 00:00");
    assert_eq!(w.deny[0].reason(), Some("holiday freeze"));
    assert_eq!(w.deny[1].to_string(), "fri 15:00–24:00");
    assert!(matches!(
        w.deny[1],
        Window::Weekly {
            to: End::EndOfDay,
            ..
        }
    ));
    // Case and single-digit hours are forgiven; 24:00 in a one-off is the next day.
    let w = windows(
        "allow: [{ days: [Mon, FRI], from: \"9:00\", to: \"17:30\" }, \
         { from: \"2026-12-31 12:00\", to: \"2026-12-31 24:00\" }]",
    );
    assert_eq!(w.allow[0].to_string(), "mon,fri 09:00–17:30");
    assert_eq!(
        w.allow[1].to_string(),
        "2026-12-31 12:00 – 2027-01-01 00:00"
    );
}

/// Each refusal: the key path and a piece of the message.
#[test]
fn refusals_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "timezone: Europe/Pariss",
            "windows.timezone",
            "unknown time zone \"Europe/Pariss\"",
        ),
        (
            "timezone: \"\"",
            "windows.timezone",
            "the time zone is empty",
        ),
        ("timezone: CEST", "windows.timezone", "unknown time zone"),
        (
            "allow: [{ days: [mon, fry], from: \"09:00\", to: \"17:00\" }]",
            "windows.allow[0].days",
            "\"fry\" is not a day; use mon, tue, wed, thu, fri, sat or sun",
        ),
        (
            "allow: [{ days: [monday], from: \"09:00\", to: \"17:00\" }]",
            "windows.allow[0].days",
            "\"monday\" is not a day",
        ),
        (
            "allow: [{ days: [], from: \"09:00\", to: \"17:00\" }]",
            "windows.allow[0].days",
            "the list of days is empty",
        ),
        (
            "allow: [{ days: [mon, mon], from: \"09:00\", to: \"17:00\" }]",
            "windows.allow[0].days",
            "mon is listed twice",
        ),
        (
            "deny: [{ days: [fri], from: \"15:00\", to: \"15:00\" }]",
            "windows.deny[0]",
            "from and to are both 15:00: the window would be empty",
        ),
        (
            "deny: [{ days: [fri], from: \"3pm\", to: \"24:00\" }]",
            "windows.deny[0].from",
            "\"3pm\" is not a time of day (HH:MM)",
        ),
        (
            "deny: [{ days: [fri], from: \"15:00\", to: \"24:30\" }]",
            "windows.deny[0].to",
            "\"24:30\" is not a time of day: hours go from 00 to 23",
        ),
        (
            "deny: [{ days: [fri], from: \"15:60\", to: \"16:00\" }]",
            "windows.deny[0].from",
            "\"15:60\" is not a time of day",
        ),
        (
            "deny: [{ days: [fri], from: \"24:00\", to: \"06:00\" }]",
            "windows.deny[0].from",
            "a window cannot start at 24:00",
        ),
        (
            "deny: [{ days: [fri], from: \"15:00\", to: \"15:00:30\" }]",
            "windows.deny[0].to",
            "not a time of day",
        ),
        (
            "deny: [{ from: \"15:00\", to: \"24:00\" }]",
            "windows.deny[0]",
            "days: is missing",
        ),
        (
            "deny: [{ days: [fri], from: \"2026-12-20 00:00\", to: \"2027-01-04 00:00\" }]",
            "windows.deny[0].days",
            "days apply to weekly windows, but from and to are dates",
        ),
        (
            "deny: [{ from: \"2027-01-04 00:00\", to: \"2026-12-20 00:00\" }]",
            "windows.deny[0].to",
            "the window ends at 2026-12-20 00:00, before it starts (2027-01-04 00:00)",
        ),
        (
            "deny: [{ from: \"2027-01-04 00:00\", to: \"2027-01-04 00:00\" }]",
            "windows.deny[0].to",
            "the window ends when it starts (2027-01-04 00:00)",
        ),
        (
            "deny: [{ from: \"2027-01-04 00:00\", to: \"2027-01-03 24:00\" }]",
            "windows.deny[0].to",
            "the window ends when it starts",
        ),
        (
            "deny: [{ from: \"2026-02-30 00:00\", to: \"2026-03-02 00:00\" }]",
            "windows.deny[0].from",
            "\"2026-02-30\" is not a date of the calendar",
        ),
        (
            "deny: [{ from: \"2026-12-20\", to: \"2027-01-04\" }]",
            "windows.deny[0].from",
            "\"2026-12-20\" is not a date and time (YYYY-MM-DD HH:MM)",
        ),
        (
            "deny: [{ from: \"2026-12-20 00:00\", to: \"17:00\" }]",
            "windows.deny[0].to",
            "from is a date and time, so this is a one-off window",
        ),
        (
            "deny: [{ from: soon, to: later }]",
            "windows.deny[0].from",
            "\"soon\" is neither a date and time",
        ),
        (
            "allow: [{ days: [mon], from: \"09:00\", to: \"17:00\" }]\n\
             deny: [{ days: [mon], from: \"09:00\", to: \"10:00\", reason: \"\" }]",
            "windows.deny[0].reason",
            "the reason is empty",
        ),
        (
            "deny: [{ days: [mon], from: \"09:00\", to: \"10:00\", reason: \"a\\u001b[2Jb\" }]",
            "windows.deny[0].reason",
            "control character U+001B",
        ),
    ];
    for (yaml, key, needle) in cases {
        let spec: WindowsSpec =
            serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let e = parse(&spec).expect_err(yaml);
        assert_eq!(e.key, *key, "{yaml}: {e}");
        assert!(e.message.contains(needle), "{yaml}: {e}\nwanted {needle:?}");
        assert!(!e.hint.is_empty(), "{yaml}");
    }
    // A reason too long to quote in every message.
    let spec = WindowsSpec {
        timezone: None,
        allow: vec![],
        deny: vec![WindowSpec {
            days: Some(vec!["mon".into()]),
            from: "09:00".into(),
            to: "10:00".into(),
            reason: Some("x".repeat(MAX_REASON_CHARS + 1)),
        }],
    };
    let e = parse(&spec).expect_err("long reason");
    assert_eq!(e.key, "windows.deny[0].reason");
    assert!(e.message.contains("at most 200"), "{e}");
}
