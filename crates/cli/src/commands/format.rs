//! Docker's ways of printing sizes, ages and tables.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

/// Decimal units with three significant digits, as docker's `units.HumanSize`:
/// `0B`, `742kB`, `4.26MB`, `1.1GB`.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// Docker's `units.HumanDuration` plus " ago": "2 minutes ago", "About an hour ago".
pub fn time_ago(unix_seconds: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format!(
        "{} ago",
        basic_engine::status::human_duration(now - unix_seconds)
    )
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `…+02:00`) to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Aligned columns, as docker prints its tables: the header and rows joined by tabs,
/// through [`tabwriter`].
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = header.join("\t");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwriter(&text)
}

/// Go's `text/tabwriter` as docker sets it up for tables (minimum cell width 10,
/// padding 3, spaces): a tab ends a cell, cells of a column in consecutive lines are
/// padded to the widest of them plus the padding, and the text after a line's last tab
/// is not a column cell and is never padded.
pub fn tabwriter(text: &str) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let width = |cell: &str| cell.chars().count();

    fn write_lines(
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &[usize],
        range: std::ops::Range<usize>,
    ) {
        for i in range {
            for (j, cell) in lines[i].iter().enumerate() {
                out.push_str(cell);
                if let Some(w) = widths.get(j) {
                    let pad = w.saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
    }

    // Go's `format`: column `widths.len()` is laid out block by block, where a block is
    // a run of lines that have a cell in that column; inside a block, the next column.
    fn format(
        out: &mut String,
        lines: &[Vec<&str>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
        width: &dyn Fn(&str) -> usize,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(out, lines, widths, line0..this);
            line0 = this;
            let mut w = MIN_WIDTH;
            while this < line1 && column + 1 < lines[this].len() {
                w = w.max(width(lines[this][column]) + PADDING);
                this += 1;
            }
            widths.push(w);
            format(out, lines, widths, line0, this, width);
            widths.pop();
            line0 = this;
        }
        write_lines(out, lines, widths, line0..line1);
    }

    let mut out = String::with_capacity(text.len() * 2);
    format(&mut out, &lines, &mut Vec::new(), 0, lines.len(), &width);
    out
}

/// docker's `units.HumanSizeWithPrecision`: decimal units, `digits` significant digits
/// (`1.99MB` with 3, `1.986MB` with 4).
pub fn human_size_with_precision(bytes: u64, digits: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        size.log10().floor() as usize + 1
    };
    let decimals = digits.saturating_sub(int_digits);
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// Go's `time.Time.String()` in the local time zone, as docker's `CreatedAt` columns
/// print it: `2024-01-02 03:04:05 +0000 UTC`, with the fraction of a second (trailing
/// zeros cut) when `fraction`.
pub fn go_time(unix_nanos: i64, fraction: bool) -> String {
    let Ok(at) = jiff::Timestamp::from_nanosecond(i128::from(unix_nanos)) else {
        return String::new();
    };
    let zoned = at.to_zoned_datetime(jiff::tz::TimeZone::system());
    let mut text = zoned.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = zoned.subsec_nanosecond();
    if fraction && nanos > 0 {
        let digits = format!("{nanos:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    let offset = zoned.strftime(" %z %Z").to_string();
    text.push_str(&offset);
    text
}

/// docker's `--since`/`--until`: an RFC 3339 time, unix seconds, or a duration ago.
pub fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("invalid time {text:?}: an RFC 3339 time, unix seconds, or a duration such as 10m")
    })?;
    Ok(SystemTime::now() - ago)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(742_000), "742kB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(1_100_000_000), "1.1GB");
    }

    #[test]
    fn sizes_with_more_digits() {
        assert_eq!(human_size_with_precision(1_986_000, 4), "1.986MB");
        assert_eq!(human_size_with_precision(999, 4), "999B");
        assert_eq!(human_size_with_precision(123_456_789, 4), "123.5MB");
    }

    #[test]
    fn tabwriter_lays_out_like_gos() {
        // Minimum width 10, padding 3; the last cell of a line is never padded.
        assert_eq!(
            tabwriter("A\tBB\tC\nlonger-than-ten\tx\ty\n"),
            "A                 BB        C\nlonger-than-ten   x         y\n"
        );
        // A tab-ended empty cell is padded; a line without the column breaks the block.
        assert_eq!(
            tabwriter("a\tb\t\nno tabs here\nccc\td\n"),
            "a         b         \nno tabs here\nccc       d\n"
        );
        assert_eq!(tabwriter(""), "");
    }

    #[test]
    fn go_time_strings() {
        // The zone is the machine's: the exact text is only known for UTC.
        if jiff::tz::TimeZone::system().iana_name() == Some("UTC") {
            assert_eq!(go_time(0, false), "1970-01-01 00:00:00 +0000 UTC");
            assert_eq!(
                go_time(1_500_000_000, true),
                "1970-01-01 00:00:01.5 +0000 UTC"
            );
        }
        assert!(go_time(0, false).starts_with("19"));
    }

    #[test]
    fn rfc3339_parses_with_fraction_and_offset() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00.5Z"), Some(1_704_067_200));
        assert_eq!(
            parse_rfc3339("2024-01-01T02:00:00+02:00"),
            Some(1_704_067_200)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
