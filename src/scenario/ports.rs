//! `--mock-ports BASE`: a scenario's mocks on fixed loopback ports, in the
//! order they are declared (`127.0.0.1:BASE`, `BASE + 1`, …), whatever their
//! `listen` says, so that a router configured once (by hand, or with
//! `gauntlet export-config --mock-ports BASE`) finds them run after run.
//! `gauntlet run`, `gauntlet mock` and `gauntlet export-config` all place
//! the mocks through [`pin_mock_ports`].

use std::net::{Ipv4Addr, SocketAddr};

use mock_providers::ProviderConfig;

/// The lowest `BASE`: the ports below are privileged.
pub const MIN_MOCK_PORT: u16 = 1024;

/// A `BASE` that leaves the range of unprivileged ports for some mock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--mock-ports {base}: {why}; BASE must be between {MIN_MOCK_PORT} and {highest} for {count} mock(s)")]
pub struct MockPortsError {
    pub base: u16,
    /// How many mocks need a port.
    pub count: usize,
    /// The highest `BASE` that fits them all.
    pub highest: u16,
    why: String,
}

/// The highest `BASE` that gives `count` mocks a port each.
fn highest_base(count: usize) -> u16 {
    let spare = u16::try_from(count.saturating_sub(1)).unwrap_or(u16::MAX);
    u16::MAX.saturating_sub(spare).max(MIN_MOCK_PORT)
}

/// Checks that `count` mocks fit from `base` up, within 1024..=65535.
pub fn check_mock_ports(base: u16, count: usize) -> Result<(), MockPortsError> {
    let highest = highest_base(count);
    let why = if base < MIN_MOCK_PORT {
        format!("ports below {MIN_MOCK_PORT} are privileged")
    } else if base > highest {
        format!(
            "the last of {count} mocks would need port {}, past 65535",
            u32::from(base) + u32::try_from(count).unwrap_or(u32::MAX) - 1
        )
    } else {
        return Ok(());
    };
    Err(MockPortsError {
        base,
        count,
        highest,
        why,
    })
}

/// Makes the mocks listen on `127.0.0.1:base`, `base + 1`, … in order;
/// refuses a `base` whose range leaves 1024..=65535 (and changes nothing).
pub fn pin_mock_ports<'a>(
    mocks: impl ExactSizeIterator<Item = &'a mut ProviderConfig>,
    base: u16,
) -> Result<(), MockPortsError> {
    check_mock_ports(base, mocks.len())?;
    for (port, mock) in (base..=u16::MAX).zip(mocks) {
        mock.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mock_providers::Dialect;

    use super::*;

    fn mocks(n: usize) -> Vec<ProviderConfig> {
        let listen: SocketAddr = "0.0.0.0:18001".parse().unwrap();
        (0..n)
            .map(|i| ProviderConfig::any_model(&format!("m{i}"), Dialect::OpenAi, listen))
            .collect()
    }

    #[test]
    fn mocks_take_consecutive_loopback_ports_in_order() {
        let mut m = mocks(3);
        pin_mock_ports(m.iter_mut(), 20_000).unwrap();
        let got: Vec<String> = m.iter().map(|c| c.listen.to_string()).collect();
        assert_eq!(got, ["127.0.0.1:20000", "127.0.0.1:20001", "127.0.0.1:20002"]);
        // The top of the range fits exactly.
        pin_mock_ports(m.iter_mut(), 65_533).unwrap();
        assert_eq!(m[2].listen.port(), 65_535);
    }

    #[test]
    fn a_base_out_of_range_says_which_bases_fit() {
        let mut m = mocks(2);
        let e = pin_mock_ports(m.iter_mut(), 65_535).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--mock-ports 65535: the last of 2 mocks would need port 65536, past 65535; \
             BASE must be between 1024 and 65534 for 2 mock(s)"
        );
        assert_eq!(m[0].listen.port(), 18_001, "nothing moved");
        let e = pin_mock_ports(m.iter_mut(), 80).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--mock-ports 80: ports below 1024 are privileged; BASE must be between 1024 and 65534 for 2 mock(s)"
        );
        check_mock_ports(1024, 0).unwrap();
        check_mock_ports(65_535, 1).unwrap();
    }
}
