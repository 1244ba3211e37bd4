//! Chat prompts from a model's Jinja chat template (messages with plain
//! string content, as LLM templates expect), rendered like transformers does.

use anyhow::{anyhow, Result};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// `tokenizer.apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`.
pub fn render_chat(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // transformers compiles chat templates with these two options.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    let ctx = minijinja::context! {
        messages => minijinja::Value::from_serialize(messages),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    };
    env.render_str(template, ctx)
        .map_err(|e| anyhow!("rendering the chat template: {e:#}"))
}

/// Built-in templates for `--chat-format` when the model has none or the user picks one.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    Some(match name {
        "chatml" => "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "smolvlm" => "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
        "gemma" => "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
        _ => return None,
    })
}
