//! Cron expressions with a seconds field, as the `cron` crate reads them,
//! checked here first so that a mistake is told in one line with its fix:
//! the number of fields (a five-field crontab line lacks the seconds), a
//! number out of its field's range (`0 0 25 * * *`: hours are 0-23), or a
//! schedule that never fires (`0 0 7 30 Feb *`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A cron expression with a seconds field: `0 */5 * * * *` is every five
/// minutes. Valid by construction, and fires at least once more.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct CronSchedule {
    pub expression: String,
    pub schedule: cron::Schedule,
}

/// What the fields are, for messages.
const SHAPE: &str =
    "6 fields: second minute hour day-of-month month day-of-week, and optionally a year";

/// Each field: its name in messages, the range of its numbers, and what
/// else it takes.
const FIELDS: [(&str, u32, u32, &str); 7] = [
    ("second", 0, 59, ""),
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("day of month", 1, 31, ""),
    ("month", 1, 12, " or Jan-Dec"),
    ("day of week", 1, 7, ", 1 = Sunday, or Sun-Sat"),
    ("year", 1970, 2100, ""),
];

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expression = s.trim();
        if !expression.starts_with('@') {
            check_fields(expression)?;
        }
        let schedule = cron::Schedule::from_str(expression).map_err(|e| {
            let reason = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            format!("`{expression}` is not a cron expression herald reads ({reason}); it needs {SHAPE}, e.g. `0 0 8 * * Mon`")
        })?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(format!(
                "`{expression}` never fires: no date to come matches every field (is the day of month in the month, the year still ahead?)"
            ));
        }
        Ok(CronSchedule {
            expression: expression.to_string(),
            schedule,
        })
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CronSchedule::from_str(&s)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl CronSchedule {
    /// The first time strictly after `after` that the schedule fires, read
    /// in the time zone `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The count of fields and the range of every number in them.
fn check_fields(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    match fields.len() {
        6 | 7 => {}
        5 => {
            return Err(format!(
                "`{expression}` has 5 fields, like a crontab line, but herald's cron expressions start with seconds ({SHAPE}): write `0 {expression}`"
            ))
        }
        n => return Err(format!("`{expression}` has {n} fields; it needs {SHAPE}, e.g. `0 */5 * * * *`")),
    }
    for (field, (name, min, max, more)) in fields.iter().zip(FIELDS) {
        for item in field.split(',') {
            let (base, step) = match item.split_once('/') {
                Some((base, step)) => (base, Some(step)),
                None => (item, None),
            };
            let numbers = base
                .split('-')
                .filter(|n| n.chars().all(|c| c.is_ascii_digit()));
            for n in numbers.filter(|n| !n.is_empty()) {
                let in_range = n.parse::<u32>().is_ok_and(|v| (min..=max).contains(&v));
                if !in_range {
                    return Err(format!(
                        "`{expression}`: {name} {n} is out of range (the {name} field takes {min}-{max}{more})"
                    ));
                }
            }
            if let Some(step) = step {
                let ok = step.parse::<u32>().is_ok_and(|v| (1..=max).contains(&v));
                if !ok {
                    return Err(format!(
                        "`{expression}`: the step `/{step}` of the {name} field must be a number from 1 to {max}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        CronSchedule::from_str(s).unwrap_err()
    }

    #[test]
    fn mistakes_are_told_in_one_line_with_the_fix() {
        let e = err("0 0 25 * * *");
        assert!(
            e.contains("hour 25 is out of range") && e.contains("0-23"),
            "{e}"
        );
        assert!(!e.contains("less than 23"), "{e}");
        let e = err("*/5 * * * *");
        assert!(
            e.contains("5 fields") && e.contains("`0 */5 * * * *`"),
            "{e}"
        );
        let e = err("0 0 7 30 Feb *");
        assert!(e.contains("never fires"), "{e}");
        assert!(err("0 0 8 * * 0").contains("day of week 0 is out of range"));
        assert!(err("0 61 * * * *").contains("minute 61"));
        assert!(err("0 0 8 * * Mon,Frii").contains("0 0 8 * * Mon"));
        assert!(err("0 */0 * * * *").contains("step"));
        assert!(err("every minute").contains("2 fields"));
        assert!(err("0 0 0 1 1 * 2020").contains("never fires"));
        for e in [
            err("0 0 25 * * *"),
            err("*/5 * * * *"),
            err("0 0 8 * * Frii"),
        ] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn good_expressions_parse() {
        for ok in [
            "0 0 23 * * *",
            "0 */5 * * * *",
            "0 0 8 * * Mon",
            "0 0 8 * * Mon-Fri",
            "0 0 0 1 1 * 2099",
            "0 0 7 29 Feb *",
            "@daily",
            " 0 0 8 1,15 * * ",
        ] {
            CronSchedule::from_str(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
