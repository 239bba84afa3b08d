//! One Markdown file that is not an article: the message of `herald
//! announce`. Front matter (TOML or YAML, as articles have) may give its
//! `title`, else its first `# Heading` is; the body is rendered as an
//! article's is (CommonMark, raw HTML cleaned, every URL absolute against
//! `base`), because it goes out by mail and into the web archive.

use url::Url;

use super::{front_matter, html, markdown};

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `title` from the front matter, else the first level-1 heading.
    pub title: Option<String>,
    pub html: String,
}

/// Renders `text` (a whole Markdown file). Errors say what is wrong and
/// on which line where known.
pub fn render_message(text: &str, base: &Url) -> Result<Message, String> {
    let split = front_matter::split(text).map_err(|e| e.reason)?;
    let title = match split.format {
        Some(format) => front_matter::parse(format, split.front, 2)
            .map_err(|e| match e.line {
                Some(line) => format!("line {line}: {}", e.reason),
                None => e.reason,
            })?
            .get("title")
            .and_then(|n| n.value.scalar_text()),
        None => None,
    };
    let rendered = markdown::render(split.body, base);
    let html = if rendered.has_raw_html {
        html::absolutize_and_clean(&rendered.html, base)?
    } else {
        rendered.html
    };
    Ok(Message {
        title: title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .or(rendered.first_heading),
        html,
    })
}
