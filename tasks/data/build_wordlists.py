"""One-off script that wrote the two word lists in this folder (not imported by `tasks`).

    pip install --target /tmp/wl wordfreq==3.1.1 english-words==2.0.2
    PYTHONPATH=/tmp/wl python tasks/data/build_wordlists.py

- words_web2_3to5.txt: every alphabetic word of 3-5 letters in the `web2` list (Webster's
  Second International, as shipped by english-words 2.0.2), lower-cased. This is the list
  behind NLTK's `words` corpus, i.e. the dictionary the official MM-HELIX WordLadder
  generator used; we need it only to score official records.
- words_common.txt: our dictionary for word ladders: the 30,000 most frequent English words
  (wordfreq 3.1.1, `top_n_list('en', 30000)`) of 3-5 letters that are also lower-case
  entries of both web2 and GCIDE, minus names, abbreviations, fragments and vulgar or
  offensive words (BLOCK below). One word a line, sorted.

Neither package is a dependency of the project: the lists are checked in.
"""
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


def main():
    web2 = get_english_words_set(["web2"])
    web2_any = sorted({w.lower() for w in web2 if w.isalpha() and w.isascii() and 3 <= len(w) <= 5})
    web2_lower = {w for w in web2 if w.isalpha() and w.isascii() and w.islower()}
    gcide = get_english_words_set(["gcide"], alpha=True, lower=True)
    top = top_n_list("en", 30000)
    common = sorted({w for w in top if 3 <= len(w) <= 5 and w in web2_lower and w in gcide
                     and w not in BLOCK})
    with open("tasks/data/words_web2_3to5.txt", "w") as f:
        f.write("\n".join(web2_any) + "\n")
    with open("tasks/data/words_common.txt", "w") as f:
        f.write("\n".join(common) + "\n")
    print(len(web2_any), len(common))


if __name__ == "__main__":
    main()
