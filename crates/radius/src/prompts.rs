//! Reply-Message texts: the engine's typed prompts in the user's language, English for a
//! language without texts here.

use mfad_core::engine::{Prompt, PromptKind};
use mfad_core::pin::PinError;
use std::borrow::Cow;

/// The languages with texts of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    En,
    De,
}

impl Lang {
    /// By the primary subtag of a language tag (`de`, `de-CH`, `de_AT`); English for
    /// anything else.
    fn of(tag: &str) -> Self {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("de") {
            Self::De
        } else {
            Self::En
        }
    }
}

/// The Reply-Message for `prompt`.
pub fn reply_message(prompt: &Prompt) -> Cow<'static, str> {
    let lang = Lang::of(&prompt.language);
    match &prompt.kind {
        PromptKind::PinRejected { why } => Cow::Owned(match lang {
            Lang::En => format!("PIN not accepted: {why}. Enter a new PIN"),
            Lang::De => format!(
                "PIN nicht akzeptiert: {}. Geben Sie eine neue PIN ein",
                pin_rule_de(why)
            ),
        }),
        PromptKind::Upstream { text } => Cow::Owned(text.clone()),
        kind => Cow::Borrowed(fixed(kind, lang)),
    }
}

/// The texts without parts of their own.
fn fixed(kind: &PromptKind, lang: Lang) -> &'static str {
    use PromptKind as K;
    match (lang, kind) {
        (Lang::En, K::EnterCode) => "Enter the code from your authenticator",
        (Lang::En, K::EnterPinAndCode) => {
            "Enter your PIN followed by the code from your authenticator"
        }
        (Lang::En, K::NewPin) => "Enter a new PIN",
        (Lang::En, K::ConfirmPin) => "Enter the new PIN again",
        (Lang::En, K::PinMismatch) => "The PINs did not match. Enter a new PIN",
        (Lang::En, K::SmsCode) => "Enter the code sent to your phone",
        (Lang::En, K::SmsWrongCode) => "Wrong code. Enter the code sent to your phone",
        (Lang::En, K::SmsResent) => "A new code was sent. Enter the code sent to your phone",
        (Lang::En, K::AnswerCall) => "Answer the call to your phone",
        (Lang::En, K::ReplySms) => "Reply to the SMS sent to your phone",
        (Lang::De, K::EnterCode) => "Geben Sie den Code aus Ihrer Authenticator-App ein",
        (Lang::De, K::EnterPinAndCode) => {
            "Geben Sie Ihre PIN und danach den Code aus Ihrer Authenticator-App ein"
        }
        (Lang::De, K::NewPin) => "Geben Sie eine neue PIN ein",
        (Lang::De, K::ConfirmPin) => "Geben Sie die neue PIN noch einmal ein",
        (Lang::De, K::PinMismatch) => {
            "Die PINs waren nicht gleich. Geben Sie eine neue PIN ein"
        }
        (Lang::De, K::SmsCode) => "Geben Sie den Code ein, der an Ihr Telefon gesendet wurde",
        (Lang::De, K::SmsWrongCode) => {
            "Falscher Code. Geben Sie den Code ein, der an Ihr Telefon gesendet wurde"
        }
        (Lang::De, K::SmsResent) => {
            "Ein neuer Code wurde gesendet. Geben Sie den Code ein, der an Ihr Telefon gesendet wurde"
        }
        (Lang::De, K::AnswerCall) => "Nehmen Sie den Anruf auf Ihrem Telefon an",
        (Lang::De, K::ReplySms) => "Antworten Sie auf die SMS an Ihr Telefon",
        // Rendered with their parts by `reply_message`.
        (_, K::PinRejected { .. } | K::Upstream { .. }) => "",
    }
}

/// Why a new PIN was refused, in German.
fn pin_rule_de(why: &PinError) -> String {
    match why {
        PinError::NotDigits => "die PIN darf nur aus Ziffern bestehen".into(),
        PinError::TooShort(n) => format!("die PIN muss mindestens {n} Ziffern haben"),
        PinError::TooLong(n) => format!("die PIN darf höchstens {n} Ziffern haben"),
        PinError::Pattern => "die PIN darf keine Ziffer dreimal wiederholen und keine drei aufeinanderfolgenden Ziffern enthalten".into(),
        PinError::InPhone => "die PIN darf nicht Teil Ihrer Telefonnummer sein".into(),
        PinError::Reused => "die PIN muss sich von Ihren letzten PINs unterscheiden".into(),
        PinError::Hash => "die PIN konnte nicht gespeichert werden".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(kind: PromptKind, language: &str) -> String {
        reply_message(&Prompt {
            kind,
            language: language.into(),
        })
        .into_owned()
    }

    #[test]
    fn english_texts_are_the_ones_clients_always_showed() {
        assert_eq!(
            text(PromptKind::EnterCode, "en"),
            "Enter the code from your authenticator"
        );
        assert_eq!(
            text(
                PromptKind::PinRejected {
                    why: PinError::TooShort(4)
                },
                ""
            ),
            "PIN not accepted: the PIN must have at least 4 digits. Enter a new PIN"
        );
        assert_eq!(
            text(PromptKind::SmsWrongCode, "en-GB"),
            "Wrong code. Enter the code sent to your phone"
        );
    }

    #[test]
    fn german_users_get_german_texts() {
        assert_eq!(
            text(PromptKind::NewPin, "de"),
            "Geben Sie eine neue PIN ein"
        );
        assert_eq!(
            text(PromptKind::EnterCode, "de-CH"),
            "Geben Sie den Code aus Ihrer Authenticator-App ein"
        );
        assert_eq!(
            text(PromptKind::PinRejected { why: PinError::TooLong(8) }, "DE_at"),
            "PIN nicht akzeptiert: die PIN darf höchstens 8 Ziffern haben. Geben Sie eine neue PIN ein"
        );
    }

    #[test]
    fn an_unknown_language_falls_back_to_english() {
        for language in ["fr", "xx-YY", "deu", ""] {
            assert_eq!(
                text(PromptKind::ConfirmPin, language),
                "Enter the new PIN again",
                "{language}"
            );
        }
    }

    #[test]
    fn a_target_text_passes_through_in_every_language() {
        for language in ["en", "de"] {
            let kind = PromptKind::Upstream {
                text: "Target PIN?".into(),
            };
            assert_eq!(text(kind, language), "Target PIN?");
        }
    }

    #[test]
    fn every_prompt_has_a_text_in_every_language() {
        let kinds = [
            PromptKind::EnterCode,
            PromptKind::EnterPinAndCode,
            PromptKind::NewPin,
            PromptKind::ConfirmPin,
            PromptKind::PinMismatch,
            PromptKind::SmsCode,
            PromptKind::SmsWrongCode,
            PromptKind::SmsResent,
            PromptKind::AnswerCall,
            PromptKind::ReplySms,
        ];
        for kind in kinds {
            let (en, de) = (text(kind.clone(), "en"), text(kind.clone(), "de"));
            assert!(!en.is_empty() && !de.is_empty() && en != de, "{kind:?}");
        }
    }
}
