pub(crate) mod dnsmasq;
