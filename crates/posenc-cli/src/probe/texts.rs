//! The probe's built-in texts (plain English, so that greedy continuations are ordinary tokens).

/// decode-consistency's prompt (about 60 tokens: short enough that no server caches it as a
/// long prefix).
pub const DECODE_PROMPT: &str = "The history of the printing press begins in the fifteenth century, when \
Johannes Gutenberg combined movable metal type, oil-based ink and a screw press adapted from wine making. \
Within fifty years printing shops had spread to";

const PASSAGE: &str = "The river rises in the hills to the north and runs for two hundred miles before it \
reaches the sea. For most of its length it is slow and wide, and barges carry grain, timber and coal \
between the towns along its banks. In spring the snow melts in the hills and the water rises quickly; \
the old towns built walls and sluices against the floods, and some of them still stand. The first \
bridge was made of wood and burned twice. The stone bridge that replaced it has nine arches and has \
carried traffic for six hundred years. Fishermen still work the lower river in small boats, and in \
autumn the salmon run upstream to spawn in the gravel beds where the water is cold and clear. \
Naturalists count the birds that nest in the reed beds each year: herons, grebes, warblers and, in \
the quietest places, the bittern, whose call carries across the marsh at dusk like a distant horn. ";

/// batch-invariance's prompts: four lengths (about 10 to 90 tokens), so that a padded batch pads
/// all but the longest.
pub fn batch_prompts() -> Vec<&'static str> {
    let cut = |chars: usize| -> &'static str {
        let end = PASSAGE[..chars].rfind(' ').unwrap_or(chars);
        &PASSAGE[..end]
    };
    vec![cut(45), cut(130), cut(250), cut(430)]
}

/// prefix-cache's long shared prefix (about 330 tokens), made new to the server by `nonce`.
pub fn long_prefix(nonce: u64) -> String {
    format!("Record {nonce}.\n{PASSAGE}{PASSAGE}\n")
}

/// The first ending after the long prefix.
pub const ENDING_A: &str = "Question: what carries grain along the river? Answer:";
/// The second ending after the long prefix.
pub const ENDING_B: &str = "In one sentence, the bridge";

/// The reference check's text: the passage and the decode prompt repeated to `chars` characters.
pub fn reference_text(chars: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < chars {
        s.push_str(if i % 2 == 0 { PASSAGE } else { DECODE_PROMPT });
        s.push(' ');
        i += 1;
    }
    s
}
