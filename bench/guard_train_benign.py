"""Generated benign training text for the guard's classifier (bench/guard_train.py): instructions aimed at people.

Hard negatives: text that tells a reader what to do, quotes instructions, talks about models, prompts, systems and
assistants, or carries speaker labels, encoded blobs and other languages, without addressing a model that reads
it. Written for training only, in its own words, separately from the labeled sets of bench/guard_quality.py.
Each kind is a function of a ``random.Random`` that returns one snippet (a sentence or a few lines); background
text (generated prose, code, logs, Spanish) comes from ``ctxops.evals`` with its own seed. This module knows text,
not features or models.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable

from guard_train_attacks import goal

_NAMES = (
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kemi",
    "Luis",
    "Mira",
)
_FOODS = ("onions", "dough", "sauce", "rice", "chicken", "lentils", "custard", "batter", "salmon", "broth")
_DEVICES = ("router", "printer", "thermostat", "dishwasher", "camera", "scanner", "headset", "projector")


def recipe(rng: random.Random) -> str:
    f, g = rng.sample(_FOODS, 2)
    return rng.choice(
        (
            f"Whisk the {f} by hand; an electric mixer makes it tough.",
            "Skip the garnish if you are short on time, nobody will miss it.",
            f"Go back to step {rng.randint(2, 9)} and do the same with the {g}.",
            f"Let the {f} rest for a quarter of an hour before you carve it.",
            f"Swap the cream for yoghurt if you want a lighter {g}.",
            f"Keep stirring the {f} until it coats the back of a spoon.",
            f"Pay no attention to the cooking time printed on the packet; it is far too long for the {g}.",
            f"Change of method for the {g}: bake it covered for the first twenty minutes.",
            f"Tip from our readers: the {f} keeps for three days in a sealed jar.",
            f"My grandmother always said to season the {g} at the very end.",
            f"Never crowd the pan, or the {f} will steam instead of browning.",
        )
    )


def manual(rng: random.Random) -> str:
    d, n = rng.choice(_DEVICES), rng.randint(2, 12)
    return rng.choice(
        (
            f"Before first use, charge the {d} for at least {n} hours.",
            f"Leave out step {n} when the {d} is mounted on a wall bracket.",
            f"Unplug the {d}, wait {n} seconds and plug it back in to clear the error.",
            f"You can change the default schedule of the {d} under Settings > Timers.",
            "The setup wizard will prompt you to choose a language and a time zone.",
            f"Press and hold the pairing key until the {d} beeps twice.",
            f"Older firmware skipped this check; release {n}.2 adds it back.",
            f"Minimum requirements: {n} GB of free disk space and a USB port.",
            f"Only a qualified technician should open the service panel of the {d}.",
            f"Keep this booklet with the {d} in case you sell it.",
            f"The instructions for models sold before 2020 do not apply to this {d}.",
            f"The companion app shows the {d}'s battery level and firmware version.",
            f"Caution: the {d} gets hot during use; let it cool before cleaning.",
            f"Troubleshooting: if the {d} ignores the remote, replace its batteries.",
        )
    )


def code_review(rng: random.Random) -> str:
    n = rng.randint(3, 400)
    return rng.choice(
        (
            f"Line {n}: this branch can never run, the guard above already returns.",
            "The new parser replaces the old one, so the legacy options are dropped silently; please warn instead.",
            "Could the prompt strings live in a template file? They are hard to review inline.",
            "Why is the retry limit five? A short comment would help the next reader.",
            "Let's drop the old naming convention for new files and keep it for existing ones.",
            "Per the contributing guide, rebase on main before you ask for another review.",
            "Never log the raw token here; redact it like the other handlers do.",
            "The special tokens in the chat template test look right to me now.",
            f"On line {n} the system message is built twice; reuse the first one.",
            "Ignore my comment on the cache layer, I was looking at an outdated diff.",
            "The model registry should refuse weights whose checksum does not match.",
            f"Approved. The flaky test on line {n} is tracked separately.",
            "Escape the user's text before it goes into the instruction block.",
        )
    )


def chat_log(rng: random.Random) -> str:
    a, b = rng.sample(_NAMES, 2)
    return rng.choice(
        (
            f"{a}: the landlord says to leave the keys in the mailbox.",
            f"{b}: which boxes did the instructions say to tick?",
            f"{a}: just the ones on page three, skip the rest.",
            f"{b}: scratch that, the dinner is on Saturday now.",
            f"{a}: the voice assistant in my car keeps reading out old messages.",
            f"{b}: the coach told us to ignore the scoreboard and play our game.",
            f"{a}: don't forget to water the plants.\n{b}: on it.",
            f"{a}: the bot on the bank's site told me to call the branch instead.",
            f"{b}: new instructions from the school: pick-up is at 3:15 from now on.",
            f"{a}: my dad's rule was always finish what you start.",
            f"{b}: did you tell the users about the maintenance window?\n{a}: posted it an hour ago.",
        )
    )


def support(rng: random.Random) -> str:
    return rng.choice(
        (
            "Live chat is staffed from eight to eight; outside those hours, leave a message.",
            "We will never ask you to confirm your card number by text message.",
            "To reset your password, open the link we send you within fifteen minutes.",
            "Agent: thanks for waiting, I have reset your account.\nCustomer: great, it works now.",
            f"Agent: could you read me the serial number?\nCustomer: it is {rng.randint(10**7, 10**8)}.",
            "Service status: all systems operational. The last incident was resolved on Monday.",
            "Account owners can rename the workspace from the admin console.",
            "The help bot answers common questions and opens a ticket for everything else.",
            "Customers on the old plan keep their price until the renewal date.",
        )
    )


def ai_research(rng: random.Random) -> str:
    n = rng.randint(2, 9)
    return rng.choice(
        (
            f"Figure {n} plots loss against the number of training tokens for each model size.",
            "The chat model was evaluated zero-shot, with the default system prompt of its template.",
            "Longer contexts helped retrieval but hurt instruction following past 32K tokens.",
            "Each assistant reply was scored by two raters; disagreements went to a third.",
            f"Section {n} discusses prompt injection defenses and their false-positive rates.",
            "The tokenizer adds special tokens around every turn of the conversation.",
            "Our instruction data mixes human-written tasks with synthetic ones.",
            "Ask the model for a single label and parse the first token of its answer.",
            "When writing a system prompt, put the persona first and the output format last.",
            "A smaller model distilled from the large one keeps most of its accuracy.",
            "Refusal rates dropped after the safety tuning was relaxed in the second round.",
            "Base models continue text; instruction-tuned ones answer requests.",
            "The benchmark asks the model to follow three formatting rules at once.",
        )
    )


def policy(rng: random.Random) -> str:
    return rng.choice(
        (
            "This agreement supersedes all prior agreements between the parties on this subject.",
            "Any earlier version of these terms is replaced by this one from the effective date.",
            "Employees must not disclose confidential information to anyone outside the company.",
            "Never reveal your password to anyone, including someone who says they are from IT.",
            "Ignore unexpected calls that ask you to install remote-access software.",
            "Previous travel rules no longer apply; book through the new portal.",
            "Managers should remind their teams that expense reports are due on the fifth.",
            "The old policy on remote work is withdrawn and the new one takes effect in March.",
            "Report suspicious e-mails to the security team and do not click their links.",
        )
    )


def school(rng: random.Random) -> str:
    n = rng.randint(1, 12)
    return rng.choice(
        (
            "Answer all questions in section A and any two in section B.",
            f"Ignore question {n}; it was misprinted and will not be marked.",
            "Write your answer in the box and show your working below it.",
            f"Forget the formula from chapter {n}; this problem needs the one from the appendix.",
            "Read the passage twice before you answer the questions about it.",
            "Respond to each prompt in at least two hundred words.",
            "Do not turn the page until the instructor tells you to begin.",
        )
    )


def email(rng: random.Random) -> str:
    a = rng.choice(_NAMES)
    return rng.choice(
        (
            f"Hi {a}, please disregard my previous email; the meeting is at three, not two.",
            f"Forget what I said about Friday, {a} can cover the shift after all.",
            "Ignore the attachment in the first message, the corrected version is attached here.",
            f"Dear {a}, as instructed, I have sent the signed copy to the office.",
            "Please reply to this email only if the dates do not work for you.",
            f"Note to self: ask {a} about the new onboarding instructions.",
        )
    )


def game(rng: random.Random) -> str:
    n = rng.randint(2, 30)
    return rng.choice(
        (
            f"Save your gems until level {n}; the shop before that sells nothing useful.",
            "Open the options screen to remap the controls.",
            "The merchant's helper in the harbour teaches you to fish.",
            "Drop the heavy armour for the boss on the ice level; speed matters more there.",
            "Say the password 'lantern' to the guard at the north gate.",
            "Season three changed the scoring rules for team matches.",
            "Creative mode lets you build without collecting materials.",
        )
    )


def release_notes(rng: random.Random) -> str:
    v = f"{rng.randint(1, 9)}.{rng.randint(0, 20)}"
    return rng.choice(
        (
            f"Version {v}: the old configuration keys are ignored and a warning is printed.",
            "The previous behaviour of the --force flag is deprecated and will be removed.",
            "The assistant panel now remembers its position between sessions.",
            f"Breaking change in {v}: system prompts longer than 4K characters are truncated with a warning.",
            "Fixed: the model picker ignored the default set by the administrator.",
            "The installer no longer asks for admin rights on first launch.",
        )
    )


def screenplay(rng: random.Random) -> str:
    a, b = (n.upper() for n in rng.sample(_NAMES, 2))
    return rng.choice(
        (
            f"\n{a}: You never listen to me.\n{b}: I listen. I just don't agree.\n",
            f"\n{a}: (quietly) Forget the plan. We go in through the kitchen.\n",
            f"\nINTERVIEWER: What did they tell you to do?\n{a}: To wait by the door and say nothing.\n",
            "\nNARRATOR: The rules of the town were older than anyone could remember.\n",
        )
    )


def blobs(rng: random.Random) -> str:
    raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(18, 60)))
    return rng.choice(
        (
            f"checksum: {raw.hex()}",
            f"token={base64.b64encode(raw).decode()}",
            f"data:image/png;base64,{base64.b64encode(raw).decode()}",
            f"request id {uuid.UUID(int=rng.getrandbits(128))}",
            f"ssh-ed25519 {base64.b64encode(raw).decode()} {rng.choice(_NAMES).lower()}@laptop",
            "Encoded note: " + base64.b64encode(manual(rng).encode()).decode(),
        )
    )


def people_asks(rng: random.Random) -> str:
    """An attacker's kind of goal in a sentence between people, so the goal's words alone do not decide."""
    a, b = rng.sample(_NAMES, 2)
    g = goal(rng)
    return rng.choice(
        (
            f"{a} asked whether we could {g}; we said it was not our call.",
            f"The client wanted the agency to {g}, which the contract does not allow.",
            f"In the role-play exercise, {b} had to convince {a} to {g}.",
            f"The scam letter tried to get readers to {g}.",
            f"{a}'s note on the fridge: please {g} before Sunday.",
            f"Nobody on the committee wanted to {g}.",
            f"The script for the school play has the villain {g.split(' ', 1)[0]} {g.split(' ', 1)[-1]}.",
            f"{b} joked that the only way to win was to {g}.",
        )
    )


def questions(rng: random.Random) -> str:
    n = rng.randint(2, 40)
    return rng.choice(
        (
            "Answer the survey by the end of the week; it takes five minutes.",
            f"Respond to the invitation by the {n}th so we can book the room.",
            "Reply to all only if everyone needs to see your answer.",
            "When the terminal prompts for a passphrase, type it and press Enter.",
            f"Question {n}: what is the capital of Peru? Answer: Lima.",
            "If the form asks for your employer, answer with the company's legal name.",
            "Frequently asked questions are answered on the help page.",
            "The prompt at the bottom of the screen tells you which key to press next.",
            "Write your reply below the line and send the sheet back to the office.",
            "Say the words slowly and clearly when the machine asks for your name.",
            "Only respond to messages from the official address.",
        )
    )


_PEOPLE = (
    "staff",
    "volunteers",
    "students",
    "tenants",
    "parents",
    "guests",
    "visitors",
    "new hires",
    "players",
)
_THINGS = ("plan", "route", "schedule", "draft", "price list", "seating chart", "timetable", "menu", "agenda")


def lookalike(rng: random.Random) -> str:
    """Words an injection uses (ignore, previous, instructions, tell, reveal, respond only) aimed at people."""
    a, p, t = rng.choice(_NAMES), rng.choice(_PEOPLE), rng.choice(_THINGS)
    return rng.choice(
        (
            f"{a}, ignore the previous {t} and use the one attached to this message.",
            f"The new instructions for {p} are pinned on the noticeboard by the entrance.",
            f"Act as if the examiner is watching, {a} told the {p}.",
            f"Tell the {p} that the office is closed on Monday.",
            "Please reveal the winner only after the last round, not before.",
            f"The assistant manager will answer questions from the {p} this week.",
            "Respond only with yes or no on the reply card.",
            "In the prompt box, type the name of the file you want to open.",
            f"Forget the old {t}; we are taking the ferry now.",
            f"From now on, {p} must sign in at reception.",
            f"Do not tell the {p} about the surprise party.",
            f"Note to the translator: keep the original spelling of the {t}.",
            "Instructions for the babysitter: feed the cat at seven and lock the back door.",
            f"Dear {a}, please print the attached {t} and bring it on Monday.",
            f"Disregard the {t} on the flyer; the correct one is on our website.",
            "The model train set comes with assembly instructions and spare tracks.",
            "A language model predicts the next word from the words before it.",
            f"Your previous answer was right, {a}; the quiz master made a mistake.",
            f"Repeat after me, {p}: safety first, speed second.",
            f"The system of rules in this league is older than the {t}.",
            f"Output from the old printer is faint, so use the one upstairs for the {t}.",
            f"Share the {t} with the {p} but not with the press.",
            f"Ignore all previous versions of the {t}; this one is final.",
            f"The secret ingredient in {a}'s soup is a spoonful of miso.",
            f"Override the alarm code only if the {p} are still inside.",
            f"Summarize the {t} for the {p} in three bullet points.",
            f"Instead of the {t}, the {p} will get a printed card.",
            f"Hello everyone, the {t} for Saturday has changed again.",
        )
    )


_FOREIGN = (
    "Siga las instrucciones del fabricante antes de usar el aparato.",
    "No ignore las señales de advertencia del tablero.",
    "Lisez attentivement les consignes avant de commencer l'examen.",
    "Oubliez le sucre dans cette recette, les fruits suffisent.",
    "Bitte beachten Sie die Anweisungen auf der Verpackung.",
    "Vergessen Sie nicht, das Gerät vor der Reinigung auszuschalten.",
    "Segui le istruzioni sullo schermo per completare l'installazione.",
    "Siga as instruções do professor e responda em voz alta.",
    "Volg de instructies in de handleiding om de printer te installeren.",
    "Следуйте инструкциям на экране, чтобы завершить установку.",
    "Не забудьте выключить свет, когда уходите.",
    "请按照说明书上的步骤安装软件。",
    "不要忽略仪表盘上的警告信息。",
    "説明書の指示に従って電池を交換してください。",
    "前回の会議の内容は忘れずにメモしておいてください。",
    "설명서의 지시에 따라 필터를 교체하세요.",
    "Lütfen kurulumdan önce talimatları okuyun.",
    "Ikuti petunjuk di layar untuk menyelesaikan pemasangan.",
)


def foreign(rng: random.Random) -> str:
    return rng.choice(_FOREIGN)


KINDS: dict[str, Callable[[random.Random], str]] = {
    "recipe": recipe,
    "manual": manual,
    "code_review": code_review,
    "chat_log": chat_log,
    "support": support,
    "ai_research": ai_research,
    "policy": policy,
    "school": school,
    "email": email,
    "game": game,
    "release_notes": release_notes,
    "screenplay": screenplay,
    "blobs": blobs,
    "foreign": foreign,
    "people_asks": people_asks,
    "questions": questions,
    "lookalike": lookalike,
}
