//! Text to token ids: the tokenizer, the frequency-ranked vocabulary and padding.
//!
//! Tokenizing: lowercase; HTML line breaks (`<br />`, `<br/>`, `<br>`) become spaces; a
//! word is a maximal run of letters and digits, plus apostrophes that sit between two such
//! characters (`don't` and `rock'n'roll` stay whole; quotes like `'great'` and possessives
//! like `actors'` lose theirs); every other character separates words. This matches what
//! sentiment models need (negations such as `isn't` stay one token) without a language
//! model of punctuation.
//!
//! Ids: 0 is padding, 1 is out-of-vocabulary, and the `size − 2` most frequent words get
//! 2, 3, … in order of falling frequency, ties broken by the word, so every id is below
//! `size` (the input size of an embedding) and the vocabulary is deterministic.

use std::collections::HashMap;

/// Id of the padding token.
pub const PAD: i64 = 0;
/// Id of every word outside the vocabulary.
pub const OOV: i64 = 1;

/// Calls `emit` with each token of `text`, in order.
pub fn for_each_token(text: &str, mut emit: impl FnMut(&str)) {
    let lowered = text.to_lowercase();
    let cleaned = lowered.replace("<br />", " ").replace("<br/>", " ").replace("<br>", " ");
    let mut word = String::new();
    let mut chars = cleaned.chars().peekable();
    while let Some(c) = chars.next() {
        let apostrophe = c == '\'' || c == '\u{2019}';
        if c.is_alphanumeric() {
            word.push(c);
        } else if apostrophe && !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            word.push('\'');
        } else if !word.is_empty() {
            emit(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        emit(&word);
    }
}

/// The tokens of `text` as owned strings.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t| out.push(t.to_string()));
    out
}

/// Word ↔ id for the most frequent words.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    /// `words[i]` has id `i + 2`.
    words: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Vocabulary {
    /// The `size − 2` most frequent words of `counts` (ties by the word).
    pub fn from_counts(counts: impl IntoIterator<Item = (String, u64)>, size: usize) -> Vocabulary {
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(size.saturating_sub(2));
        let words: Vec<String> = ranked.into_iter().map(|(w, _)| w).collect();
        let ids = words.iter().enumerate().map(|(i, w)| (w.clone(), i as i64 + 2)).collect();
        Vocabulary { words, ids }
    }

    /// The vocabulary of some texts.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>, size: usize) -> Vocabulary {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            for_each_token(text, |t| *counts.entry(t.to_string()).or_default() += 1);
        }
        Vocabulary::from_counts(counts, size)
    }

    pub fn id(&self, word: &str) -> i64 {
        self.ids.get(word).copied().unwrap_or(OOV)
    }

    /// The word of an id ≥ 2, if any.
    pub fn word(&self, id: i64) -> Option<&str> {
        usize::try_from(id - 2).ok().and_then(|i| self.words.get(i)).map(String::as_str)
    }

    /// Number of ids in use, the two reserved ones included.
    pub fn len(&self) -> usize {
        self.words.len() + 2
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut out = Vec::new();
        for_each_token(text, |t| out.push(self.id(t)));
        out
    }
}

/// Where padding goes and which end a long sequence loses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pad {
    /// Keras' default: zeros in front, and a long review keeps its end.
    #[default]
    Front,
    /// Zeros at the end, and a long review keeps its beginning.
    Back,
}

/// Writes `ids` fitted to exactly `out.len()` slots into `out`.
pub fn fit_into(ids: &[i64], pad: Pad, out: &mut [i64]) {
    let length = out.len();
    let kept = ids.len().min(length);
    let (source, target) = match pad {
        Pad::Front => (&ids[ids.len() - kept..], length - kept..length),
        Pad::Back => (&ids[..kept], 0..kept),
    };
    out.fill(PAD);
    out[target].copy_from_slice(source);
}

/// `ids` padded or truncated to `length`.
pub fn fit(ids: &[i64], length: usize, pad: Pad) -> Vec<i64> {
    let mut out = vec![PAD; length];
    fit_into(ids, pad, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_splits_and_keeps_inner_apostrophes() {
        let text = "This movie isn't GREAT.<br /><br />The actors' 'best' work?! 10/10, rock'n'roll";
        assert_eq!(
            tokenize(text),
            ["this", "movie", "isn't", "great", "the", "actors", "best", "work", "10", "10", "rock'n'roll"]
        );
        assert_eq!(tokenize("Don\u{2019}t — café"), ["don't", "café"]);
        assert!(tokenize("  ...  ' ").is_empty());
    }

    #[test]
    fn vocabulary_ranks_by_frequency_then_word() {
        let vocab = Vocabulary::from_texts(["b a c a", "c b d a"], 5);
        // Counts: a 3, b 2, c 2, d 1; three places (ids 2, 3, 4) after the reserved two.
        assert_eq!((vocab.id("a"), vocab.id("b"), vocab.id("c")), (2, 3, 4));
        assert_eq!(vocab.id("d"), OOV);
        assert_eq!(vocab.word(3), Some("b"));
        assert_eq!(vocab.len(), 5);
        assert_eq!(vocab.encode("A d, c!"), vec![2, OOV, 4]);
    }

    #[test]
    fn fitting_pads_and_truncates_at_the_chosen_end() {
        let ids = [5, 6, 7, 8];
        assert_eq!(fit(&ids, 6, Pad::Front), vec![0, 0, 5, 6, 7, 8]);
        assert_eq!(fit(&ids, 6, Pad::Back), vec![5, 6, 7, 8, 0, 0]);
        assert_eq!(fit(&ids, 2, Pad::Front), vec![7, 8]);
        assert_eq!(fit(&ids, 2, Pad::Back), vec![5, 6]);
        assert_eq!(fit(&[], 3, Pad::Front), vec![0, 0, 0]);
    }
}
