//! What the user is asked to do: typed prompts, which each front-end renders in the user's
//! language and its own format (a RADIUS Reply-Message, a web page, a validate reply).

use crate::pin::PinError;
use serde::{Deserialize, Serialize};

/// A prompt and the language to show it in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub kind: PromptKind,
    /// The user's `language`, else the server's (`[server] language`); a tag such as
    /// `de` or `de-CH`, empty when neither is set. Front-ends fall back to English for a
    /// language they have no texts in.
    pub language: String,
}

/// What the user is asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum PromptKind {
    /// The code from the authenticator.
    EnterCode,
    /// The PIN followed by the code from the authenticator.
    EnterPinAndCode,
    /// A new PIN (a PIN change is due, or the user has none yet).
    NewPin,
    /// The new PIN once more.
    ConfirmPin,
    /// The new PIN broke a rule; a new one is asked for.
    PinRejected { why: PinError },
    /// The two entries of the new PIN differed; a new one is asked for.
    PinMismatch,
    /// The code texted to the user's phone.
    SmsCode,
    /// The answer was not the texted code; the same code is asked for again.
    SmsWrongCode,
    /// A new code was texted on request.
    SmsResent,
    /// Answer the call ringing on the user's phone (a pending login).
    AnswerCall,
    /// Reply to the SMS sent to the user's phone (a pending login).
    ReplySms,
    /// A target RADIUS server's own challenge text, passed through as it came.
    Upstream { text: String },
}
