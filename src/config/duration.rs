//! Durations in the config file: `"120s"`, `"1h"`, `"500ms"` (humantime), or bare seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Seconds(u64),
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => {
            humantime::parse_duration(t.trim()).map_err(|e| de::Error::custom(format!("invalid duration {t:?}: {e}")))
        }
    }
}
