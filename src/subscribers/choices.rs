//! What a subscriber may choose, checked in one place for the web form, the
//! preferences page, `subscribers add` and CSV import: the configured digest
//! schedules, and tags (any tag from the operator; only the offered ones
//! from the public form).

use std::collections::BTreeSet;

use crate::base::text::slugify;
use crate::config::Config;

/// Longest tag slug accepted.
pub const MAX_TAG: usize = 100;
/// Most tags on one subscriber.
pub const MAX_TAGS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("no [[digest]] named `{name}` ({})", configured(.known))]
    UnknownSchedule { name: String, known: Vec<String> },
    #[error("`{0}` is not one of the offered tags or sections")]
    UnknownTag(String),
    #[error("`{0}` has no letters or digits")]
    EmptyTag(String),
    #[error("a tag is longer than {MAX_TAG} characters")]
    TagTooLong,
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
}

impl ChoiceError {
    /// The choice that was refused, as the user wrote it.
    pub fn choice(&self) -> &str {
        match self {
            ChoiceError::UnknownSchedule { name, .. } => name,
            ChoiceError::UnknownTag(t) | ChoiceError::EmptyTag(t) => t,
            ChoiceError::TagTooLong | ChoiceError::TooManyTags => "",
        }
    }
}

fn configured(known: &[String]) -> String {
    if known.is_empty() {
        "none are configured".into()
    } else {
        format!("configured: {}", known.join(", "))
    }
}

/// The choices the config offers.
#[derive(Debug, Clone)]
pub struct Choices {
    schedules: Vec<String>,
    offered_tags: Vec<String>,
    /// `section:<path>` for each `[[feeds.section]]`.
    offered_sections: Vec<String>,
}

/// How a subscriber's section choice is stored beside tag slugs.
pub fn section_choice(path: &str) -> String {
    format!("section:{}", path.trim_matches('/'))
}

impl Choices {
    pub fn new(config: &Config) -> Choices {
        Choices {
            schedules: config.digest.iter().map(|d| d.name.clone()).collect(),
            offered_tags: config.subscribers.tags.clone(),
            offered_sections: config
                .feeds
                .section
                .iter()
                .map(|s| section_choice(&s.path))
                .collect(),
        }
    }

    /// Every configured schedule, in config order.
    pub fn all_schedules(&self) -> &[String] {
        &self.schedules
    }

    /// Checked schedule names, without repeats and in name order; blank
    /// entries are ignored. Nothing chosen means every schedule when
    /// `empty_means_all`.
    pub fn schedules<S: AsRef<str>>(
        &self,
        chosen: impl IntoIterator<Item = S>,
        empty_means_all: bool,
    ) -> Result<Vec<String>, ChoiceError> {
        let out = each_choice(chosen, |s| {
            if self.schedules.iter().any(|c| c == s) {
                Ok(s.to_string())
            } else {
                Err(ChoiceError::UnknownSchedule {
                    name: s.to_string(),
                    known: self.schedules.clone(),
                })
            }
        })?;
        if out.is_empty() && empty_means_all {
            return Ok(self.schedules.clone());
        }
        Ok(out)
    }

    /// Tags from the public form: only those `subscribers.tags` offers.
    pub fn offered_tags<S: AsRef<str>>(
        &self,
        chosen: impl IntoIterator<Item = S>,
    ) -> Result<Vec<String>, ChoiceError> {
        each_choice(chosen, |t| {
            if self.offered_tags.iter().any(|o| o == t)
                || self.offered_sections.iter().any(|o| o == t)
            {
                Ok(t.to_string())
            } else {
                Err(ChoiceError::UnknownTag(t.to_string()))
            }
        })
    }

    /// Tags from the operator (command line, import): any tag, made into
    /// the slug articles' tags have.
    pub fn any_tags<S: AsRef<str>>(
        &self,
        chosen: impl IntoIterator<Item = S>,
    ) -> Result<Vec<String>, ChoiceError> {
        let out = each_choice(chosen, |t| {
            if let Some(path) = t.strip_prefix("section:") {
                return Ok(section_choice(path));
            }
            let slug = slugify(t);
            if slug.is_empty() {
                Err(ChoiceError::EmptyTag(t.to_string()))
            } else if slug.chars().count() > MAX_TAG {
                Err(ChoiceError::TagTooLong)
            } else {
                Ok(slug)
            }
        })?;
        if out.len() > MAX_TAGS {
            return Err(ChoiceError::TooManyTags);
        }
        Ok(out)
    }
}

/// Each non-blank choice, trimmed, through `check`; the results without
/// repeats, in order.
fn each_choice<S: AsRef<str>>(
    chosen: impl IntoIterator<Item = S>,
    check: impl Fn(&str) -> Result<String, ChoiceError>,
) -> Result<Vec<String>, ChoiceError> {
    let mut out = BTreeSet::new();
    for c in chosen {
        let c = c.as_ref().trim();
        if !c.is_empty() {
            out.insert(check(c)?);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Choices {
        Choices {
            schedules: vec!["weekly".into(), "daily".into()],
            offered_tags: vec!["rust".into(), "go".into()],
            offered_sections: vec!["section:inside-rust".into()],
        }
    }

    #[test]
    fn schedules_are_checked_deduplicated_and_default_to_all() {
        let c = choices();
        assert_eq!(
            c.schedules(["weekly", " daily", "weekly"], false).unwrap(),
            ["daily", "weekly"]
        );
        assert_eq!(c.schedules([""; 0], true).unwrap(), ["weekly", "daily"]);
        assert!(c.schedules([""; 0], false).unwrap().is_empty());
        let err = c.schedules(["monthly"], true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no [[digest]] named `monthly` (configured: weekly, daily)"
        );
        assert_eq!(err.choice(), "monthly");
    }

    #[test]
    fn the_form_offers_only_configured_tags_the_operator_any() {
        let c = choices();
        assert_eq!(
            c.offered_tags(["go", "rust", "go"]).unwrap(),
            ["go", "rust"]
        );
        assert_eq!(
            c.offered_tags(["section:inside-rust", "go"]).unwrap(),
            ["go", "section:inside-rust"]
        );
        assert!(c.offered_tags(["section:secret"]).is_err());
        assert_eq!(c.any_tags(["section:/news/"]).unwrap(), ["section:news"]);
        assert_eq!(
            c.offered_tags(["python"]).unwrap_err(),
            ChoiceError::UnknownTag("python".into())
        );
        assert_eq!(
            c.any_tags(["Web Dev", "python"]).unwrap(),
            ["python", "web-dev"]
        );
        assert!(matches!(c.any_tags(["!!"]), Err(ChoiceError::EmptyTag(_))));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(c.any_tags(&many), Err(ChoiceError::TooManyTags));
    }
}
