"""``unifaas completion bash|zsh``: a shell completion script made from the parser itself,
so it knows every command, group action and option there is (the entry points' included).

bash: ``source <(unifaas completion bash)`` (or save it under
``/etc/bash_completion.d/``); zsh: ``source <(unifaas completion zsh)`` (bash's through
zsh's ``bashcompinit``).
"""

from __future__ import annotations

import argparse

_FUNCTION = """_unifaas() {
  local cur=${COMP_WORDS[COMP_CWORD]} words="" key="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in -*) ;; *) key="$key ${COMP_WORDS[i]}";; esac
  done
  key=${key# }
  case "$key" in
%s
    *) words="" ;;
  esac
  if [[ $cur == -* ]]; then words=$(compgen -W "$words" -- "$cur" | grep -- '^-')
  else words=$(compgen -W "$words" -- "$cur" | grep -v -- '^-'); fi
  COMPREPLY=($words)
  [[ ${#COMPREPLY[@]} -eq 0 && $cur != -* ]] && COMPREPLY=($(compgen -f -- "$cur"))
  return 0
}
complete -F _unifaas unifaas
"""
_ZSH_PRELUDE = "autoload -U +X bashcompinit && bashcompinit\n"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [opt for action in parser._actions for opt in action.option_strings]


def _cases(parser: argparse.ArgumentParser, key: str = "") -> list[str]:
    """One ``case`` arm per command path: what may follow it."""
    children = _subparsers(parser)
    words = [*children, *_options(parser)]
    arms = [f'    "{key}") words="{" ".join(words)}" ;;']
    for name, child in children.items():
        arms += _cases(child, f"{key} {name}".strip())
    return arms


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    text = _FUNCTION % "\n".join(_cases(parser))
    return (_ZSH_PRELUDE + text) if shell == "zsh" else text
