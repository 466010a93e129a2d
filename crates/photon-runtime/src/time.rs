//! Wall-clock time as protocols write it: ISO 8601 (S3's XML bodies) and RFC 7231 dates (HTTP
//! headers, SigV2 signatures).

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// (year, month 1-12, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a (year, month 1-12, day) date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `2013-05-24T00:00:00.000Z`.
pub fn iso8601(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    iso8601_into(&mut out, ms);
    out
}

/// Appends `iso8601(ms)` to `out` without the formatting machinery (listings write a thousand).
pub fn iso8601_into(out: &mut String, ms: i64) {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    if !(0..=9999).contains(&y) {
        use std::fmt::Write;
        let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", t / 3600, t % 3600 / 60, t % 60);
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, t / 3600);
    put(14, 2, t % 3600 / 60);
    put(17, 2, t % 60);
    put(20, 3, millis);
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// `Fri, 24 May 2013 00:00:00 GMT`.
pub fn http_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil(days);
    let t = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// Milliseconds of an RFC 7231 date (`Fri, 24 May 2013 00:00:00 GMT`).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    // `GMT` as RFC 7231 writes it; `+0000` as some signers (and AWS's SigV2 examples) do.
    let [_, d, mon, y, hms, "GMT" | "UTC" | "+0000"] = parts.as_slice() else { return None };
    let m = MONTHS.iter().position(|x| x == mon)? as i64 + 1;
    let hms: Vec<i64> = hms.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else { return None };
    let days = days_from_civil(y.parse().ok()?, m, d.parse().ok()?);
    Some((days * 86_400 + h * 3600 + mi * 60 + s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let ms = 1_369_353_600_000; // 2013-05-24T00:00:00Z
        assert_eq!(iso8601(ms + 5), "2013-05-24T00:00:00.005Z");
        assert_eq!(http_date(ms), "Fri, 24 May 2013 00:00:00 GMT");
        assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(ms));
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 +0000"), Some(ms));
        let leap = parse_http_date("Thu, 29 Feb 2024 12:34:56 GMT").unwrap();
        assert_eq!(http_date(leap), "Thu, 29 Feb 2024 12:34:56 GMT");
        assert_eq!(iso8601(leap + 789), "2024-02-29T12:34:56.789Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        let far = days_from_civil(10_000, 1, 1) * 86_400_000;
        assert_eq!(iso8601(far), "10000-01-01T00:00:00.000Z", "years past 9999 are written in full");
    }
}
