package clidocs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v3"
)

// Shells are the shells Completion writes a script for.
var Shells = []string{"bash", "zsh", "fish"}

// Completion returns the completion script of app for shell. The bash and
// zsh scripts follow urfave/cli's own (its autocomplete/ directory) with the
// program name filled in: they ask the program itself for candidates with
// --generate-shell-completion, so app must set EnableShellCompletion; it
// answers a line NAME:USAGE per candidate. The fish script is urfave/cli's
// ToFishCompletion, generated from the flags, without its lines that ask the
// program (fish would offer each NAME:USAGE line whole as a candidate).
func Completion(app *cli.Command, shell string) (string, error) {
	switch shell {
	case "bash":
		return strings.ReplaceAll(bashScript, "PROG", app.Name), nil
	case "zsh":
		return strings.ReplaceAll(zshScript, "PROG", app.Name), nil
	case "fish":
		script, err := app.ToFishCompletion()
		if err != nil {
			return "", err
		}
		lines := strings.SplitAfter(script, "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, " --generate-shell-completion ") })
		return strings.Join(lines, ""), nil
	}
	return "", fmt.Errorf("no completion for shell %q: choose %s", shell, strings.Join(Shells, ", "))
}

const bashScript = `# bash completion for PROG; install as
# /usr/share/bash-completion/completions/PROG, or: source <(PROG completion bash)

_PROG_bash_autocomplete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur opts words cword line names
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      words=("${COMP_WORDS[@]}")
      cword=$COMP_CWORD
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      opts=$("${words[@]}" "${cur}" --generate-shell-completion 2>/dev/null)
    else
      opts=$("${words[@]}" --generate-shell-completion 2>/dev/null)
    fi
    # A line NAME:USAGE per candidate; bash offers the names.
    names=()
    while IFS= read -r line; do
      [[ -n "$line" ]] && names+=("${line%%:*}")
    done <<< "$opts"
    COMPREPLY=($(compgen -W "${names[*]}" -- "${cur}"))
    return 0
  fi
}

complete -o bashdefault -o default -o nospace -F _PROG_bash_autocomplete PROG
`

const zshScript = `#compdef PROG
# zsh completion for PROG; install as _PROG in a directory of $fpath,
# or: source <(PROG completion zsh)

_PROG_zsh_autocomplete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-shell-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-shell-completion)}")
  fi

  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

compdef _PROG_zsh_autocomplete PROG
# Autoloaded from $fpath as _PROG: complete this first call too.
if [[ "${funcstack[1]}" == "_PROG" ]]; then
  _PROG_zsh_autocomplete "$@"
fi
`
