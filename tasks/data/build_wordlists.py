"""One-off script that writes the word lists in this folder (not imported by `tasks`).

    pip install --target /tmp/wl wordfreq==3.1.1 english-words==2.0.2
    apt-get download wamerican wamerican-large        # SCOWL 2020.12.07, sizes 50 and 70
    for f in wamerican*.deb; do dpkg-deb -x $f /tmp/scowl; done
    PYTHONPATH=/tmp/wl python tasks/data/build_wordlists.py /tmp/scowl/usr/share/dict

- words_english_3to5.txt (the verifier's list): every lower-case, alphabetic 3-5 letter entry
  of SCOWL size 70 (Debian `wamerican-large`, `american-english-large`): a maintained
  spell-checker list with plurals and inflections (cars, goes, paid), without proper nouns
  (they are capitalised there) and possessives.
- words_common.txt (the generator's list): the 30,000 most frequent English words
  (wordfreq 3.1.1, `top_n_list('en', 30000)`) of 3-5 letters that are lower-case entries of
  SCOWL size 50 (Debian `wamerican`) and are, or regularly inflect (+s, +es, +d, +ed, +ing),
  a lower-case entry of both web2 and GCIDE (english-words 2.0.2): this keeps out the
  abbreviations and slang that SCOWL and wordfreq hold. Minus BLOCK (names, fragments,
  vulgar words). One word a line, sorted.
- words_web2_3to5.txt: every alphabetic 3-5 letter word of `web2` (Webster's Second
  International, as shipped by english-words 2.0.2), lower-cased: the list behind NLTK's
  `words` corpus, i.e. the dictionary the official MM-HELIX WordLadder generator used; we
  need it only to score official records.

None of these packages is a dependency of the project: the lists are checked in.
"""
import os
import re
import sys

from english_words import get_english_words_set
from wordfreq import top_n_list

BLOCK = set("""
amy ann dan ben sam pam ted joe jed lew han kat kan mao sao ava ana ani ara ras cal cox dod
nye poe ged dee lin lim lan mun nam nat pau tue yer wis wot ers ing ist ich ide tho til fra
gon dup dak dal dey bey hoy ley mal mir sal sen sai mil pes gen ora ova uva tri pac soc bac
cha kos gan cor col bom bis bel ala aga alt gif git tod tor wah yin dis dev rex lea lee lat
las lam coz cum sex tit fag ass pap dun pus
aint alfa alma anil baba babu bain beal bing chad coll conn cora dade dodd eyre jane joss kali
kemp kern lear lori luce mack marc mina mora neal ness parr peri rhea rudd sept shay sora
tait tron trey twas vail vert wang wong wynn beth bret burt carl cass cate clem brit scot turk
tory whig soho luke mick mike lucy mary maud maya mona otto paco rory ross ruth seth tony troy
toby kirk jess joey june argo alan anna eric baku napa hong holt gump gage hank hart rand
nous fiat berg arse anal anus boob clit cock crap dick dyke homo piss pimp puss slut orgy
tits nude lewd rape puke poop butt hump damn hell
betty billy bobby barry brent brett colin jerry jimmy jenny harry henry larry laura lewis
maria molly norma paolo pedro perry peter ralph roger sally tammy terry vinny willy ethel
faust gemma hogan homer ariel amman japan kodak bafta chevy cisco rhine tonga wigan weber
ryder slade silva burke darby acton benny buffy dixie donna merle missy hurst hough garth
marge monte costa china dutch swiss welsh banco blanc carte conte chico cheng largo levin
masse mater petit playa scala seine pasha rowan sahib swain wight laird crore rondo serge
savoy moray morse firth fitch croft bower bitch boner booby dildo horny kinky negro penis
pubic pussy semen sperm titty whore queer jihad lynch spank gypsy prick fecal feces satan
booze sexy porn
""".split())


def scowl(path):
    """Lower-case alphabetic 3-5 letter entries of a SCOWL list (capitalised = proper noun)."""
    with open(path, encoding="utf-8") as f:
        return {w.strip() for w in f if re.fullmatch(r"[a-z]{3,5}", w.strip())}


def inflects(w, base):
    return any(w.endswith(suf) and len(w) - len(suf) >= 2 and w[:-len(suf)] in base
               for suf in ("s", "es", "d", "ed", "ing"))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/dict"
    scowl50 = scowl(os.path.join(folder, "american-english"))
    scowl70 = scowl(os.path.join(folder, "american-english-large"))
    web2 = get_english_words_set(["web2"])
    web2_any = sorted({w.lower() for w in web2 if w.isalpha() and w.isascii() and 3 <= len(w) <= 5})
    web2_lower = {w for w in web2 if w.isalpha() and w.isascii() and w.islower()}
    gcide = get_english_words_set(["gcide"], alpha=True, lower=True)
    base = web2_lower & gcide
    top = top_n_list("en", 30000)
    common = sorted({w for w in top if 3 <= len(w) <= 5 and w in scowl50 and w not in BLOCK
                     and (w in base or inflects(w, base))})
    english = sorted(scowl70 | set(common))
    for name, words in (("words_web2_3to5.txt", web2_any), ("words_common.txt", common),
                        ("words_english_3to5.txt", english)):
        with open(os.path.join("tasks/data", name), "w") as f:
            f.write("\n".join(words) + "\n")
    print(len(web2_any), len(common), len(english))


if __name__ == "__main__":
    main()
