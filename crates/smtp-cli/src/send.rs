//! `smtp send`: the client. Not wired yet: it arrives with the client state machine.

use clap::Args;

/// Options of `smtp send` (accepted as they come until the client lands).
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Everything after `send`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// Runs `smtp send`; returns the exit status.
pub(crate) fn main(args: SendArgs) -> u8 {
    let _ = args.args;
    eprintln!("smtp send: not yet implemented");
    crate::serve::EX_USAGE
}
