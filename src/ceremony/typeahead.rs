//! Lines typed ahead are thrown away when a new prompt opens: at a console, a key pressed
//! while a step was running (an impatient Enter, a PIN typed before its prompt) must not
//! answer the next question, least of all a confirmation. A terminal in canonical mode hands
//! the program one line per read, so what was typed ahead is still in the terminal's input
//! queue; it is flushed (`tcflush(TCIFLUSH)`). Input that is not a terminal (a program driving
//! the console over a pipe, an answers file) is left alone: it is meant to be read in order.

use std::io::IsTerminal;

/// Discards what was typed on the terminal and not read yet.
pub(super) fn discard() {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Nothing to undo if it fails: the prompt is shown all the same.
        let _ = rustix::termios::tcflush(&stdin, rustix::termios::QueueSelector::IFlush);
    }
}
